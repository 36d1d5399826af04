"""Benchmark networks: quantized ANNs with data-driven thresholds, and synthetic inputs.

Speed does not depend on what the weights learned, but spike counts and prediction checks do, so
the thresholds are not left at their initial value: each quantizer's alpha/theta is set to the
99th percentile of its positive input on the benchmark batch (one pass, layer by layer), which
gives firing rates like a trained network's (a few to ~20 % of neuron-steps).
"""

from __future__ import annotations

import torch
from torch import nn

from qac.convert import quantizers
from qac.models import build
from qac.quant import QACQuantizer, QCFSQuantizer

__all__ = ["benchmark_ann", "benchmark_images", "set_percentile_thresholds"]


def benchmark_images(batch: int, *, image_size: int = 32, seed: int = 0) -> torch.Tensor:
    """Normalised synthetic images (``[B, 3, H, W]``, channels_last)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, image_size, image_size, generator=g)
    return x.contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def set_percentile_thresholds(model: nn.Module, images: torch.Tensor, q: float = 0.99) -> None:
    """Set every quantizer's threshold to the ``q`` quantile of its positive input."""

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().float().flatten()
        pos = x[x > 0]
        if pos.numel() > 1_000_000:  # quantile() has an input size limit; subsample evenly
            pos = pos[:: pos.numel() // 1_000_000 + 1]
        value = float(torch.quantile(pos, q)) if pos.numel() else 1.0
        if isinstance(module, QCFSQuantizer):
            module.theta.fill_(value)
        elif isinstance(module, QACQuantizer) and module.case in (2, 3, 4):
            module.alpha.fill_(value)
        else:
            raise TypeError(f"cannot set the threshold of {type(module).__name__}")

    handles = [m.register_forward_pre_hook(hook) for _, m in quantizers(model)]
    was_training = model.training
    model.eval()
    try:
        model(images)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()


def benchmark_ann(
    arch: str,
    images: torch.Tensor,
    *,
    activation: str = "qcfs",
    timesteps: list[int] | int = 4,
    seed: int = 0,
) -> nn.Module:
    """A quantized ``arch`` (CIFAR-10 head) with percentile thresholds.

    ``timesteps`` is one T for every layer (QCFS levels / QAC T) or, for QAC, a per-layer list
    (a mixed-timestep profile like the paper's Fig. 1).
    """
    torch.manual_seed(seed)
    if activation == "qcfs":
        if not isinstance(timesteps, int):
            raise ValueError("QCFS networks take one uniform T")
        model = build(arch, 10, activation="qcfs", levels=timesteps)
    elif activation == "qac":
        first = timesteps if isinstance(timesteps, int) else timesteps[0]
        model = build(arch, 10, activation="qac", case=4, timesteps=first)
        if not isinstance(timesteps, int):
            qs = [m for _, m in quantizers(model)]
            if len(qs) != len(timesteps):
                raise ValueError(f"{arch} has {len(qs)} quantizers, got {len(timesteps)} T values")
            with torch.no_grad():
                for m, T in zip(qs, timesteps, strict=True):
                    m.t.fill_(float(T))
    else:
        raise ValueError(f"unknown activation {activation!r}")
    model = model.to(memory_format=torch.channels_last).eval()
    set_percentile_thresholds(model, images)
    return model


# Illustrative mixed-timestep profiles in the shape of the paper's Fig. 1 (more steps in the
# first and last layers, fewer in the middle); one T per quantizer, in forward order.
MIXED_PROFILES: dict[str, list[int]] = {
    "vgg16": [6, 5, 4, 4, 3, 3, 3, 2, 2, 2, 2, 2, 3, 4, 6],
    "resnet20": [6, 5, 5, 4, 4, 4, 4, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 3, 5],
    "resnet18": [6, 5, 5, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 3, 4, 5],
}
