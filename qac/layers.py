"""Per-layer quantizer summary (T, alpha, bits): what Figs. 1 and 5-10 plot."""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from qac.convert import quantizers

__all__ = ["quantizer_summary"]


def quantizer_summary(model: nn.Module) -> list[dict[str, Any]]:
    """Per-layer T and alpha (the quantities Figs. 1, 5-10 plot)."""
    rows = []
    for name, q in quantizers(model):
        T = q.timesteps
        rows.append(
            {
                "layer": name,
                "T": T if math.isfinite(T) else "inf",
                "alpha": q.threshold,
                "bits": math.log2(T) if math.isfinite(T) and T > 0 else "inf",
            }
        )
    return rows
