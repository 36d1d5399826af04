"""Training options: :class:`TrainConfig`, typed and validated, hashed to name a run.

Options come from YAML, JSON or ``--set`` strings; every value is converted to the field's
declared type (``"5e-4"`` -> 0.0005) or refused with :class:`ConfigError` naming the option, so
equal values always give the same :meth:`TrainConfig.fingerprint`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qac.data import AugmentConfig

__all__ = ["ConfigError", "TrainConfig", "UNHASHED", "check_init_from", "init_sha256"]

# options that change where or how a run is watched, not its result: left out of the fingerprint
UNHASHED = ("device", "progress", "eval_every", "cache_dir", "data_root", "tensorboard")


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it."""


@dataclass
class TrainConfig:
    """Everything a training run depends on (hashed to guard resumption)."""

    arch: str = "resnet20"
    dataset: str = "synthetic-cifar10"
    data_root: str = "data"
    cache_dir: str | None = None
    width: float = 1.0
    activation: dict[str, Any] = field(
        default_factory=lambda: {"name": "qac", "case": 4, "alpha": 8.0, "timesteps": 4}
    )
    epochs: int = 300
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    quantizer_lr: float | None = None  # None: same as lr
    quantizer_weight_decay: float | None = None  # None: same as weight_decay (QCFS does this)
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    data_options: dict[str, Any] = field(default_factory=dict)  # e.g. synthetic sizes
    data_seed: int = 0  # seed of synthetic data (independent of the training seed)
    train_limit: int | None = None
    test_limit: int | None = None
    augment: dict[str, Any] = field(default_factory=dict)  # AugmentConfig fields
    bf16: bool = False
    channels_last: bool = False
    float64: bool = False  # train in double precision (CPU-independent weights; smoke scale)
    seed: int = 0
    device: str = "auto"
    eval_every: int = 1
    progress: bool = True  # progress bars (the per-epoch log lines stay)
    tensorboard: bool = False  # TensorBoard scalars in runs/<fingerprint>/tensorboard/
    # model.pt (of 'qac train') whose weights start the run; quantizer parameters the source
    # lacks keep their initial values. Hashed by the file's sha256, not its path.
    init_from: str | None = None
    # with init_from: each quantizer's alpha (QCFS theta) = this percentile of the positive
    # activations of the float model's ReLU at its place, on the first training batch
    init_threshold_percentile: float | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        cfg = cls(**_typed_fields(cls, values, "training"))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Convert every option to its declared type (``"5e-4"`` -> 0.0005) and check ranges."""
        for name, value in _typed_fields(type(self), dataclasses.asdict(self), "training").items():
            setattr(self, name, value)
        self.augment = _typed_fields(AugmentConfig, self.augment, "augment")
        for name in ("epochs", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if "name" not in self.activation:
            raise ConfigError("activation must be a mapping with a 'name' (qac, qcfs or relu)")
        p = self.init_threshold_percentile
        if p is not None and not 0 < p <= 100:
            raise ConfigError(f"init_threshold_percentile must be in (0, 100], got {p}")
        if p is not None and self.init_from is None:
            raise ConfigError(
                "init_threshold_percentile needs init_from (the float model whose activations "
                "set the thresholds): set init_from or init_threshold_percentile: null"
            )
        if self.float64 and self.bf16:
            raise ConfigError("float64 and bf16 exclude each other: set one of them to false")

    def fingerprint(self) -> str:
        """Hash of the options that change the result (not where or how it is watched).

        ``init_from`` counts by the sha256 of the file's content (a re-trained source gives a new
        fingerprint, a moved one does not); without it the hash is that of earlier versions.
        """
        d = dataclasses.asdict(self)
        for k in UNHASHED:
            d.pop(k)
        source = d.pop("init_from")
        if d["init_threshold_percentile"] is None:  # unset: the hash of earlier versions
            d.pop("init_threshold_percentile")
        if source is not None:
            d["init_from_sha256"] = init_sha256(source)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def check_init_from(path: str | Path) -> Path:
    """``path`` (the ``init_from`` option) if it is a file, else ConfigError with the fix."""
    p = Path(path)
    if not p.is_file():
        what = "is a directory" if p.is_dir() else "does not exist"
        raise ConfigError(
            f"init_from {p} {what}: point it to the model.pt of a finished 'qac train' run "
            "(train the float model first, e.g. qac train --set activation.name=relu --out "
            "<dir>) or set init_from to null"
        )
    return p


def init_sha256(path: str | Path) -> str:
    """The sha256 of the ``init_from`` file (ConfigError when it is missing); cached per file
    version (path, size, modification time), so a run hashes it once."""
    p = check_init_from(path).resolve()
    st = p.stat()
    return _file_sha256(str(p), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_KINDS = {
    bool: "true or false",
    int: "an integer",
    float: "a finite number",
    str: "a string",
    tuple: "a list of finite numbers",
}


def _typed_fields(cls: type, values: dict[str, Any], what: str) -> dict[str, Any]:
    """``values`` (options of dataclass ``cls``) converted to the field types; ConfigError if not.

    ``what`` names the options in messages; nested options are called ``augment.flip``.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{what} options must be a mapping, not {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        valid = sorted(f.name for f in dataclasses.fields(cls))
        raise ConfigError(f"unknown {what} option(s) {unknown}: valid options are {valid}")
    prefix = "" if what == "training" else f"{what}."
    return {k: _typed(prefix + k, v, hints[k]) for k, v in values.items()}


def _typed(name: str, value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` (``X | None``, bool, int, float, str or dict) or ConfigError."""
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    kind = typing.get_origin(hint) or hint
    converted = _convert(kind, value)
    if converted is None:
        raise ConfigError(f"option {name}={value!r} is not {_KINDS.get(kind, 'a mapping')}")
    return converted


def _convert(kind: type, value: Any) -> Any:
    """``value`` converted to ``kind``, or None where it does not fit."""
    if kind is bool:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value if isinstance(value, bool) else None
    if kind in (int, float):
        number = _number(value)
        if kind is float:
            return number
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return int(number) if number is not None and number.is_integer() else None
    if kind is tuple:  # e.g. augment.color_jitter: a list or tuple of numbers (YAML gives a list)
        if not isinstance(value, list | tuple):
            return None
        numbers = [_number(v) for v in value]
        return None if any(n is None for n in numbers) else tuple(numbers)
    return value if isinstance(value, kind) else None


def _number(value: Any) -> float | None:
    """A finite float from a number or a string in any float notation ("5e-4", ".5")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
