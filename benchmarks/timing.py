"""Side-by-side timing: candidates run in interleaved rounds and are compared by medians.

Running A, B, C, A, B, C, ... in one process exposes every candidate to the same machine state
(other load, frequency, caches), so ratios of medians hold on a noisy machine even when the
absolute numbers drift.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["interleaved", "synchronize"]


def synchronize(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    candidates: dict[str, Callable[[], object]],
    *,
    rounds: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, float]]:
    """Median, min and max seconds per call of each candidate over ``rounds`` interleaved runs."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v), "runs": len(v)}
        for name, v in samples.items()
    }
