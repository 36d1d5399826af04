"""Device choice, seeding and precision settings shared by training, evaluation and calibration."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

__all__ = ["resolve_device", "seed_everything", "autocast", "set_threads"]


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; anything else is passed to torch."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but no CUDA GPU is available: use 'auto'")
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
    threads = os.environ.get("QAC_THREADS")
    if threads:
        torch.set_num_threads(max(1, int(threads)))
