"""Device choice, seeding and precision settings shared by training, evaluation and calibration."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import random
import sys

import numpy as np
import torch

__all__ = [
    "DeviceError",
    "resolve_device",
    "seed_everything",
    "autocast",
    "prepare_process",
    "set_threads",
    "tune_allocator",
]


class DeviceError(RuntimeError):
    """The requested device does not exist here (the message says what to use instead)."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; anything else is passed to torch.

    Raises :class:`DeviceError` (one line) for an unknown device name or a CUDA device that is
    not visible, before any work is done on it.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"unknown device {str(device)!r}: use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device={device} but no CUDA GPU is visible: use device=cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise DeviceError(
            f"device={device} but only {torch.cuda.device_count()} CUDA GPU(s) are visible: "
            "use device=cuda:0 .. cuda:N-1 or auto"
        )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and ask cuDNN for determinism."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast on the given device type when ``bf16`` is set, else a no-op context."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def set_threads() -> None:
    """Respect ``QAC_THREADS`` (e.g. set by Snakemake's ``threads:``) for intra-op parallelism."""
    threads = os.environ.get("QAC_THREADS", "").strip()
    if not threads:
        return
    if not threads.isdigit() or int(threads) < 1:
        raise ValueError(f"QAC_THREADS={threads!r} is not a positive integer (unset it, or e.g. 2)")
    torch.set_num_threads(int(threads))


def prepare_process(prog: str) -> bool:
    """What every entry point does first: :func:`set_threads` and :func:`tune_allocator`.
    ``False`` (after one line ``<prog>: error: ...`` on stderr) when ``QAC_THREADS`` is invalid."""
    try:
        set_threads()
    except ValueError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return False
    tune_allocator()
    return True


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt() parameters
_tuned: list[bool] = []


def tune_allocator() -> bool:
    """Let glibc keep freed activation buffers for reuse instead of returning them to the OS.

    PyTorch's CPU tensors come from ``malloc``; glibc serves blocks above its mmap threshold
    (128 KiB to start) with fresh ``mmap`` pages and unmaps them on free, so every new
    activation tensor pays one page fault per 4 KiB on first write. For batch-128 CIFAR
    networks that costs more than the arithmetic of elementwise layers. Raising the mmap
    threshold to its maximum (32 MiB) and the trim threshold to 1 GiB makes freed blocks
    reusable (the effect of jemalloc/tcmalloc, which PyTorch's CPU tuning guide recommends).
    Results are unchanged; set ``QAC_TUNE_MALLOC=0`` to skip. Returns whether it applied.
    """
    if _tuned:
        return _tuned[0]
    applied = False
    if os.environ.get("QAC_TUNE_MALLOC", "1") != "0" and os.name == "posix":
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            if libc is not None and hasattr(libc, "mallopt"):
                applied = bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(
                    libc.mallopt(_M_TRIM_THRESHOLD, 1024 * 1024 * 1024)
                )
        except OSError:  # not glibc (musl, macOS): nothing to tune
            applied = False
    _tuned.append(applied)
    return applied
