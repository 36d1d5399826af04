"""ANN -> mixed-timestep SNN conversion (Sec. 3.2, 4.2, 4.3; Algorithm 1 lines 22-25).

:func:`to_snn` copies a quantized ANN and

- turns every quantizer into an :class:`~qac.neuron.IFNeuron` with ``v_th = alpha`` (QAC) or
  ``theta`` (QCFS) and that layer's own timestep count ``T_l`` (the quantizer's integer T, times
  the temporal scale ``k`` of Table 5; or one uniform T for QCFS sweeps), ``v0 = v_th/2`` by
  default;
- gives every :class:`~qac.align.TimeAlign` placeholder the T of the neuron it feeds and the
  alignment policy (residual blocks: both branches are aligned to the neuron after the sum);
- wraps every stateless layer (conv, BN, linear, pooling, flatten, dropout) in
  :class:`TimeFolded`, which runs it once on the time-folded batch ``[T*B, ...]``.

The input image is encoded directly (analog current, constant over the first layer's steps) and
the network output is the time average of the last layer.

Exactness (Theorem 1 made precise). With averaging at every boundary (policy
``aver+aver+aver``) and ``v0 = v_th/2``, each IF neuron receives a current that is constant in
time and equal to the quantized ANN's pre-activation, and a soft-reset IF neuron driven by a
constant current I for T steps fires exactly ``clip(floor(T*I/v_th + 1/2), 0, T)`` times, so its
time-averaged output equals Eq. 5 and the SNN reproduces the quantized ANN's logits.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from qac.align import AlignmentPolicy, TimeAlign
from qac.neuron import IFNeuron
from qac.quant import is_quantizer

__all__ = [
    "to_snn",
    "SpikingNetwork",
    "TimeFolded",
    "conversion_error",
    "quantizers",
    "neurons",
]

_SYNAPTIC = (nn.Conv2d, nn.Linear)


class TimeFolded(nn.Module):
    """Runs a stateless layer on ``[T, B, ...]`` by folding time into the batch dimension.

    An input with a leading dimension of 1 (constant over time) is processed once. With
    ``record=True`` synaptic layers (conv, linear) count their work per sample: ``macs`` for
    constant/non-binary inputs, ``acs`` (accumulates, one per non-zero input x fan-out) for spikes.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.record = False
        self.reset_stats()

    def reset_stats(self) -> None:
        self.macs = 0.0
        self.acs = 0.0
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[0], x.shape[1]
        y = self.module(x.flatten(0, 1))
        y = y.unflatten(0, (T, B))
        if self.record and isinstance(self.module, _SYNAPTIC):
            self._count(x, y)
        return y

    @torch.no_grad()
    def _count(self, x: torch.Tensor, y: torch.Tensor) -> None:
        m = self.module
        if isinstance(m, nn.Conv2d):
            fan_in = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
            dense_per_step = y[0].numel() * fan_in  # MACs of the whole batch for one step
        else:
            dense_per_step = y[0].numel() * m.in_features
        self.samples += x.shape[1]
        count = int(torch.count_nonzero(x))
        peak = x.abs().amax() if count else None
        binary = count == 0 or int(torch.count_nonzero(x.abs() == peak)) == count
        if binary:  # spikes of one amplitude v_th: one accumulate per non-zero input and target
            self.acs += dense_per_step * float(count) / x[0].numel()
        else:  # analog or averaged input; a constant ([1, ...]) input is computed once
            self.macs += float(dense_per_step) * x.shape[0]


def quantizers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` for every activation quantizer, in forward order."""
    return ((n, m) for n, m in model.named_modules() if is_quantizer(m))


def neurons(model: nn.Module) -> Iterator[tuple[str, IFNeuron]]:
    """``(name, neuron)`` for every IF neuron, in forward order."""
    return ((n, m) for n, m in model.named_modules() if isinstance(m, IFNeuron))


class SpikingNetwork(nn.Module):
    """A converted mixed-timestep SNN. ``forward(images)`` returns time-averaged logits."""

    def __init__(self, body: nn.Module, policy: AlignmentPolicy) -> None:
        super().__init__()
        self.body = body
        self.policy = policy

    def forward_steps(self, images: torch.Tensor) -> torch.Tensor:
        """Per-step outputs of the last layer: ``[T_last, B, classes]`` (``[1, B, classes]``
        when constant in time)."""
        return self.body(images.unsqueeze(0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_steps(images).mean(dim=0)

    def layer_timesteps(self) -> list[tuple[str, int]]:
        return [(name, n.timesteps) for name, n in neurons(self.body)]

    def set_record(self, record: bool = True) -> None:
        """Switch spike / synaptic-operation statistics on or off (and reset them)."""
        for m in self.modules():
            if isinstance(m, IFNeuron | TimeFolded | TimeAlign):
                m.record = record
                m.reset_stats()


def _v0_for(spec: Any, name: str) -> Any:
    if isinstance(spec, dict):
        if name not in spec:
            raise KeyError(f"v0 given per layer but missing layer {name!r}")
        return spec[name]
    return spec


def _replace(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def to_snn(
    model: nn.Module,
    policy: str | AlignmentPolicy = "aver+aver",
    v0: str | float | torch.Tensor | dict[str, Any] = "half",
    *,
    temporal_scale: int = 1,
    timesteps: int | None = None,
    surrogate: str = "rect",
    surrogate_width: float = 1.0,
) -> SpikingNetwork:
    """Convert a quantized ANN into a mixed-timestep SNN (the ANN itself is left untouched).

    Args:
        model: a model from :func:`qac.models.build` with QAC or QCFS activations.
        policy: alignment policy name (see :data:`qac.align.POLICIES`) or object.
        v0: initial membrane potential: ``"half"`` (v_th/2), ``"zero"``, a number, or a dict
            ``{layer name: tensor}`` (e.g. from calibration).
        temporal_scale: k; every layer runs ``k * T_l`` steps (Table 5 / Fig. 3).
        timesteps: run every layer for this many steps instead of its own T (QCFS sweeps).
        surrogate, surrogate_width: the IF neurons' surrogate gradient (for calibration).
    """
    policy = AlignmentPolicy.parse(policy)
    if int(temporal_scale) != temporal_scale or temporal_scale < 1:
        raise ValueError(f"temporal_scale k must be an integer >= 1, got {temporal_scale!r}")
    if timesteps is not None and (int(timesteps) != timesteps or timesteps < 1):
        raise ValueError(f"timesteps must be an integer >= 1, got {timesteps!r}")
    relus = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU | nn.ReLU6 | nn.GELU)]
    if relus:
        raise ValueError(
            f"model has non-quantized activations ({relus[0]}, ...): build it with activation "
            "'qac' or 'qcfs' and train it (Algorithm 1) before converting"
        )
    body = copy.deepcopy(model).eval()
    found = list(quantizers(body))
    if not found:
        raise ValueError("model has no QAC/QCFS quantizers to convert into IF neurons")

    by_id: dict[int, IFNeuron] = {}
    for name, q in found:
        T = int(timesteps) if timesteps is not None else q.T
        neuron = IFNeuron(
            T * int(temporal_scale),
            v_th=q.threshold_tensor(),
            v0=_v0_for(v0, name),
            surrogate=surrogate,
            surrogate_width=surrogate_width,
        )
        by_id[id(q)] = neuron
        _replace(body, name, neuron)

    for name, module in list(body.named_modules()):
        if isinstance(module, TimeAlign):
            if module.target is None:
                continue
            neuron = by_id.get(id(module.target))
            if neuron is None:
                raise ValueError(f"alignment point {name!r} feeds a module that is not a quantizer")
            object.__setattr__(module, "target", neuron)
            module.T_out = neuron.timesteps
            module.policy = policy
        elif not list(module.children()) and not isinstance(module, IFNeuron):
            _replace(body, name, TimeFolded(module))
    return SpikingNetwork(body, policy)


@torch.no_grad()
def conversion_error(ann: nn.Module, snn: SpikingNetwork, images: torch.Tensor) -> dict[str, float]:
    """Per-layer conversion error ``max |time-averaged SNN layer output - ANN activation|``.

    Layers are matched by module name (conversion keeps names). The key ``"logits"`` holds the
    error of the network output.
    """
    ann_out: dict[str, torch.Tensor] = {}
    snn_out: dict[str, torch.Tensor] = {}
    hooks = []
    for name, q in quantizers(ann):
        hooks.append(q.register_forward_hook(_store(ann_out, name, time_avg=False)))
    for name, n in neurons(snn.body):
        hooks.append(n.register_forward_hook(_store(snn_out, name, time_avg=True)))
    was_training = ann.training
    ann.eval()
    try:
        logits_ann = ann(images)
        logits_snn = snn(images)
    finally:
        ann.train(was_training)
        for h in hooks:
            h.remove()
    errors = {name: float((snn_out[name] - ann_out[name]).abs().max()) for name in ann_out}
    errors["logits"] = float((logits_snn - logits_ann).abs().max())
    return errors


def _store(bucket: dict[str, torch.Tensor], name: str, *, time_avg: bool):
    def hook(_module, _inputs, output):
        bucket[name] = output.mean(dim=0) if time_avg else output

    return hook
