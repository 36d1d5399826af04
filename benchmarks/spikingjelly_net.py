"""The same converted SNN built from SpikingJelly's modules (benchmark reference only).

SpikingJelly (``pip install spikingjelly``, the ``bench`` extra) is not a dependency of ``qac``.
:func:`spikingjelly_snn` takes a quantized ANN from :func:`qac.models.build` and replaces

- every quantizer with SpikingJelly's ``IFNode(v_threshold=theta, v_reset=None)`` (soft reset)
  whose membrane potential resets to ``theta / 2`` (``set_reset_value``), followed by the
  scaling by ``theta`` (the ann2snn converter's voltage scaler);
- every :class:`~qac.align.TimeAlign` placeholder with an identity (spikes propagate unchanged)
  or, for the averaging policies, with an explicit time average broadcast back to ``T`` steps;
- in multi-step mode, every stateless layer with ``layer.SeqToANNContainer`` (time folded into
  the batch, SpikingJelly's own multi-step design).

Single-step mode is SpikingJelly's ann2snn usage: the network is called ``T`` times on the image
and the outputs are averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from qac.align import TimeAlign
from qac.convert import quantizers

__all__ = ["spikingjelly_available", "spikingjelly_snn", "SpikingJellyRunner"]


def spikingjelly_available() -> bool:
    try:
        import spikingjelly.activation_based  # noqa: F401
    except ImportError:
        return False
    return True


class _ScaledIF(nn.Module):
    """``theta * IFNode(x)`` with ``v(0) = theta / 2``."""

    def __init__(self, theta: float, step_mode: str) -> None:
        super().__init__()
        from spikingjelly.activation_based import neuron

        self.theta = float(theta)
        self.node = neuron.IFNode(v_threshold=self.theta, v_reset=None, step_mode=step_mode)
        self.node.set_reset_value("v", self.theta / 2)
        self.node.reset()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.node(x) * self.theta


class _AverageOverTime(nn.Module):
    """Eqs. 12-13 on a ``[T, B, ...]`` train: the time mean repeated over ``T`` steps."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=0, keepdim=True).expand_as(x)


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def spikingjelly_snn(ann: nn.Module, *, step_mode: str = "s", average: bool = False) -> nn.Module:
    """SpikingJelly version of ``to_snn(ann, ...)`` with uniform T (set by the caller's loop)."""
    from spikingjelly.activation_based import layer

    if step_mode not in ("s", "m"):
        raise ValueError(f"step_mode must be 's' or 'm', got {step_mode!r}")
    if average and step_mode != "m":
        raise ValueError("time averaging between layers needs the whole train: use step_mode='m'")
    net = copy.deepcopy(ann).eval()
    for name, q in list(quantizers(net)):
        _replace(net, name, _ScaledIF(q.threshold, step_mode))
    for name, module in list(net.named_modules()):
        if isinstance(module, TimeAlign):
            _replace(net, name, _AverageOverTime() if average else nn.Identity())
        elif step_mode == "m" and not list(module.children()):
            if not isinstance(module, _ScaledIF) and ".node" not in name and name:
                _replace(net, name, layer.SeqToANNContainer(module))
    return net


class SpikingJellyRunner:
    """Runs a SpikingJelly SNN for ``T`` steps on direct-encoded images (mean output)."""

    def __init__(self, net: nn.Module, timesteps: int, step_mode: str) -> None:
        self.net = net
        self.timesteps = int(timesteps)
        self.step_mode = step_mode

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        if self.step_mode == "m":
            seq = images.unsqueeze(0).expand(self.timesteps, *images.shape)
            return self.net(seq).mean(dim=0)
        total = self.net(images)
        for _ in range(self.timesteps - 1):
            total = total + self.net(images)
        return total / self.timesteps
