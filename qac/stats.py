"""Per-layer timestep, bit-width, spike and synaptic-operation statistics.

- Average T: arithmetic mean of the per-layer T over the quantized layers (the "Time Steps"
  column of Tables 1, 2, 7 for QAC; Fig. 2/11). ``inf`` when any layer is infinite (case 3).
- Average bit-width: mean of ``log2 T_l`` over the same layers (Theorem 1: T = 2^n).
- Firing rate: spikes / (neurons x steps) per layer, from an SNN run with recording on.
- Synaptic operations per sample: accumulates (ACs) for spike inputs, multiply-accumulates
  (MACs) for analog/averaged inputs (see :class:`qac.convert.TimeFolded`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from qac.convert import SpikingNetwork, TimeFolded, neurons, quantizers

__all__ = [
    "layer_timesteps",
    "average_timesteps",
    "average_bits",
    "spike_stats",
    "synaptic_ops",
    "collect",
]


def layer_timesteps(model: nn.Module) -> list[tuple[str, float]]:
    """``(layer name, T)`` for every quantizer of an ANN or every IF neuron of an SNN.

    For an ANN, T is what the forward pass uses (integer-valued, or ``inf`` for case 3).
    """
    if isinstance(model, SpikingNetwork):
        return [(name, float(n.timesteps)) for name, n in neurons(model.body)]
    found = [(name, float(q.timesteps)) for name, q in quantizers(model)]
    if not found:
        found = [(name, float(n.timesteps)) for name, n in neurons(model)]
    return found


def _mean(values: list[float]) -> float:
    if not values:
        raise ValueError("model has no quantized layers / IF neurons")
    if any(math.isinf(v) for v in values):
        return math.inf
    return sum(values) / len(values)


def average_timesteps(model: nn.Module) -> float:
    """Arithmetic mean of the per-layer T (``inf`` if any layer's T is infinite)."""
    return _mean([T for _, T in layer_timesteps(model)])


def average_bits(model: nn.Module) -> float:
    """Mean activation bit-width ``mean(log2 T_l)`` (``inf`` if any T is infinite)."""
    return _mean(
        [math.log2(T) if math.isfinite(T) else math.inf for _, T in layer_timesteps(model)]
    )


def spike_stats(snn: SpikingNetwork) -> list[dict]:
    """Per-layer spike statistics recorded since :meth:`SpikingNetwork.set_record`."""
    rows = []
    for name, n in neurons(snn.body):
        rows.append({"layer": name, **n.stats()})
    return rows


def synaptic_ops(snn: SpikingNetwork) -> list[dict]:
    """Per synaptic layer: MACs and ACs per sample recorded since recording was switched on."""
    rows = []
    for name, m in snn.body.named_modules():
        if isinstance(m, TimeFolded) and isinstance(m.module, nn.Conv2d | nn.Linear):
            n = max(m.samples, 1)
            rows.append(
                {
                    "layer": name,
                    "kind": type(m.module).__name__,
                    "macs_per_sample": m.macs / n,
                    "acs_per_sample": m.acs / n,
                }
            )
    return rows


@torch.no_grad()
def collect(snn: SpikingNetwork, images: torch.Tensor) -> dict:
    """Run ``images`` through ``snn`` with recording on and return every statistic."""
    snn.set_record(True)
    try:
        snn(images)
        return {
            "layer_timesteps": snn.layer_timesteps(),
            "average_timesteps": average_timesteps(snn),
            "average_bits": average_bits(snn),
            "spikes": spike_stats(snn),
            "synaptic_ops": synaptic_ops(snn),
        }
    finally:
        snn.set_record(False)
