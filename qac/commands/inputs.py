"""Inputs of the ``qac`` subcommands: options files, checkpoints, datasets and output paths,
each read or checked with a one-line error that says what to do."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import yaml

from qac.checkpoint import CheckpointError, load_model
from qac.convert import quantizers
from qac.data import load_dataset, num_classes_of
from qac.runtime import resolve_device
from qac.train import ConfigError
from qac.workflow import load_yaml


def parse_yaml(text: str, what: str) -> Any:
    """``text`` read as YAML (every float notation a number); a syntax error is one line."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what} is not valid YAML{where}: {problem}") from exc


def parse_set(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (YAML values; dotted keys nest) into a dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not all(key.split(".")):
            raise ConfigError(f"--set expects key=value (e.g. epochs=5), got {item!r}")
        value = parse_yaml(raw, f"--set {item!r}") if raw != "" else None
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} was given a value, not options")
        node[leaf] = value
    return out


def merge(base: dict, extra: dict) -> dict:
    """``base`` updated by ``extra``, nested mappings merged key by key."""
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def read_yaml(path: str | None) -> dict[str, Any]:
    """The options mapping of a YAML file (empty when no ``path``)."""
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    data = parse_yaml(p.read_text(), f"config file {p}") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of options")
    return data


def check_output(path: str | None, flag: str, *, directory: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written (a file where a directory must be,
    or the reverse, or a file in the way of its parent directories)."""
    if not path:
        return
    p = Path(path)
    want = "directory" if directory else "file"
    if p.exists() and p.is_dir() != directory:
        kind = "directory" if p.is_dir() else "file"
        raise ConfigError(
            f"{flag} {p} is a {kind}, but a {want} is written there: pass a {want} path"
        )
    blocker = next((q for q in p.parents if q.exists() and not q.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{flag} {p}: {blocker} is a file, not a directory: pass another path")


def jsonable(obj: Any) -> Any:
    """``obj`` with tensors as lists and non-finite floats as ``"inf"``/``"-inf"``/``"nan"``."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return jsonable(obj.tolist())
    return obj


def key_name(exc: KeyError) -> str:
    """The missing key of ``exc``, quoted."""
    return repr(exc.args[0]) if exc.args else "key"


def load_checkpoint(path: str, arch: str | None = None, device: torch.device | str = "cpu"):
    """(model, payload) of a 'qac train' checkpoint, with one-line errors for wrong files."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(
            f"--checkpoint {p} is a directory: pass the file, e.g. {p / 'model.pt'}"
        )
    try:
        return load_model(p, arch=arch, map_location=device)
    except KeyError as exc:
        raise CheckpointError(
            f"checkpoint {p} has no {key_name(exc)}: it was not written by 'qac train'"
        ) from exc


def load_checkpoint_model(args):
    """(device, model in eval mode, checkpoint payload) for the evaluate/calibrate commands."""
    device = resolve_device(args.device)
    model, payload = load_checkpoint(args.checkpoint, args.arch, device)
    return device, model.to(device).eval(), payload


def require_snn(model, args, what: str) -> None:
    """Conversion needs quantized activations: fail before any data is read."""
    if next(iter(quantizers(model)), None) is None:
        raise ConfigError(
            f"checkpoint {args.checkpoint} has no QAC/QCFS activations (ReLU model), so it "
            f"cannot become an SNN: drop {what}"
        )


def dataset_for(args, payload: dict, split: str, limit: int | None):
    """The split to evaluate/calibrate on; its classes must be the checkpoint's (checked from
    the class folders before any image is read, and again on the loaded dataset)."""
    cfg = payload.get("config") or {}
    source = args.data or cfg.get("dataset")
    if not source:
        raise ConfigError("the checkpoint records no dataset: pass --data")
    options = cfg.get("data_options", {}) if not args.data else {}
    where = {
        "root": args.data_root or cfg.get("data_root", "data"),
        "cache_dir": args.cache_dir or cfg.get("cache_dir"),
    }
    if not str(source).strip().lower().startswith("imagenet"):  # counts 1000 for any ImageNet
        _check_classes(args, payload, source, num_classes_of(source, **where, **options))
    data = load_dataset(
        source, split, limit=limit, seed=cfg.get("data_seed", 0), **where, **options
    )
    _check_classes(args, payload, source, data.num_classes)
    return data


def _check_classes(args, payload: dict, source: str, found: int) -> None:
    want = payload["spec"]["num_classes"]
    if found != want:
        trained = (payload.get("config") or {}).get("dataset") or "the training data"
        raise ConfigError(
            f"checkpoint {args.checkpoint} predicts {want} classes but dataset {source} has "
            f"{found}: use the dataset it was trained on (--data {trained})"
        )
