"""Checkpoints that rebuild their model, written atomically, with clear errors.

A checkpoint is a ``torch.save`` dict with ``format``, the model ``spec`` (architecture, number
of classes, width, activation) and its ``state_dict``; training checkpoints add the optimizer,
scheduler and RNG state needed to resume. Files are written to a temporary name in the same
directory and moved into place (``os.replace``), so a crash never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qac.io import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from qac.models import architecture_names, build

__all__ = [
    "CheckpointError",
    "CheckpointLockedError",
    "directory_lock",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "model_spec",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
]

FORMAT = "qac-checkpoint/1"
LOCK_NAME = "train.lock"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit what was asked of it."""


class CheckpointLockedError(CheckpointError):
    """Another process holds the lock of a checkpoint directory."""


@contextlib.contextmanager
def directory_lock(directory: str | Path, *, owner: str = "qac train") -> Iterator[Path]:
    """Hold an exclusive ``flock`` on ``directory/train.lock`` (created) for the block.

    A second holder fails at once with :class:`CheckpointLockedError` naming the first one's pid.
    The kernel drops the lock when the process ends, however it ends; the file itself stays (it
    holds the last holder's pid). Where the file system has no locks, a warning is issued and the
    block runs unlocked.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                warnings.warn(
                    f"cannot lock {path} ({exc.strerror}): running unlocked", stacklevel=3
                )
                yield path
                return
            f.seek(0)
            pid = f.read().strip() or "unknown"
            raise CheckpointLockedError(
                f"another {owner} (pid {pid}) is using {directory}: wait for it or choose "
                "another --out"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield path
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def model_spec(
    arch: str, num_classes: int, activation: dict[str, Any], width: float = 1.0
) -> dict[str, Any]:
    """The dict that :func:`load_model` rebuilds a model from."""
    return {
        "arch": arch,
        "num_classes": int(num_classes),
        "activation": dict(activation),
        "width": float(width),
    }


def save_checkpoint(path: str | Path, spec: dict[str, Any], model: nn.Module, **extra: Any):
    """Write ``{format, spec, state_dict, **extra}`` atomically."""
    payload = {"format": FORMAT, "spec": spec, "state_dict": model.state_dict(), **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint; raise :class:`CheckpointError` with the fix when it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} does not exist: train one first (qac train --out {path.parent})"
        )
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated, corrupt, or not a torch file
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}): delete it and retrain"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a qac checkpoint (expected format {FORMAT}): point to a file "
            "written by 'qac train'"
        )
    return payload


def load_model(
    path: str | Path,
    *,
    arch: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """Rebuild the model stored in a checkpoint; ``arch`` (if given) must match it."""
    payload = load_checkpoint(path, map_location)
    spec = payload["spec"]
    if arch is not None and arch != spec["arch"]:
        raise CheckpointError(
            f"checkpoint {path} holds a {spec['arch']} model, not {arch}: pass the matching "
            f"--arch or the checkpoint trained for {arch}"
        )
    if spec["arch"] not in architecture_names():
        raise CheckpointError(f"checkpoint {path} names unknown architecture {spec['arch']!r}")
    model = build(
        spec["arch"], spec["num_classes"], spec["activation"], width=spec.get("width", 1.0)
    )
    float_dtypes = {t.dtype for t in payload["state_dict"].values() if t.is_floating_point()}
    if float_dtypes == {torch.float64}:  # trained in double precision: keep every bit
        model = model.to(torch.float64)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"checkpoint {path} does not fit a {spec['arch']} model: {str(exc).splitlines()[0]}"
        ) from exc
    return model, payload
