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

Any other model whose activations are quantizers (:func:`qac.prepare.prepare_qat` makes one
from a torchvision or timm network) is traced with ``torch.fx``: its operations are checked
(:class:`qac.prepare.UnsupportedOperationError`), TimeAlign placeholders are inserted at the
start of every synaptic path that reads spikes unless the model has its own (so both operands
of a residual sum or a concatenation are aligned to the neuron they feed), and its functional
operations (``+``, ``torch.cat``, ``torch.flatten``, ``x.view(x.size(0), -1)``) run on the
time-folded batch too (:class:`TimeFoldedOp`).

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
import operator
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import fx, nn

from qac import prepare
from qac.align import AlignmentPolicy, TimeAlign
from qac.neuron import IFNeuron
from qac.quant import is_quantizer

__all__ = [
    "to_snn",
    "SpikingNetwork",
    "TimeFolded",
    "TimeFoldedOp",
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
        self.per_step = False  # reference mode: one call per time step
        self.reset_stats()

    def reset_stats(self) -> None:
        self.macs = 0.0
        self.acs = 0.0
        self.samples = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[0], x.shape[1]
        if self.per_step:
            y = torch.stack([self.module(x[t]) for t in range(T)])
        else:
            y = self.module(x.flatten(0, 1)).unflatten(0, (T, B))
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


_OUT_OF_PLACE: dict[Callable, Callable] = {
    operator.iadd: operator.add,
    operator.isub: operator.sub,
    operator.imul: operator.mul,
    operator.itruediv: operator.truediv,
}


class _Signal:
    """Marks, in a :class:`TimeFoldedOp`'s argument template, where a signal is passed."""


class TimeFoldedOp(nn.Module):
    """A functional operation of a traced model (``+``, ``torch.cat``, ``x.flatten(1)``,
    ``x.view(x.size(0), -1)``, ...) run on ``[T, B, ...]`` signals with time folded into the batch.

    ``template`` is the call's ``(args, kwargs)`` with :class:`_Signal` where the graph passes
    a value computed from the input. Signal tensors are folded to ``[T*B, ...]`` (a constant
    ``[1, B, ...]`` operand is broadcast to the T of the others; two different T > 1 are an
    error: they need an alignment point) and the tensor results are unfolded. Sizes read from a
    folded signal are folded sizes, which is what the views and reshapes that use them are then
    given. In-place forms run out of place (an operand may be an aligned view shared with
    another path).
    """

    def __init__(self, fn: Callable | str, template: Any, node: str) -> None:
        super().__init__()
        if isinstance(fn, str):
            self.method = fn[:-1] if fn.endswith("_") and hasattr(torch.Tensor, fn[:-1]) else fn
            self.fn = None
        else:
            self.method, self.fn = None, _OUT_OF_PLACE.get(fn, fn)
        self.template = template
        self.node = node

    def _call(self, args: tuple, kwargs: dict) -> Any:
        if self.fn is None:
            return getattr(args[0], self.method)(*args[1:], **kwargs)
        return self.fn(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        trains: list[torch.Tensor] = []
        _map_signals((args, kwargs), self.template, lambda x: trains.append(x) or x)
        if not trains:
            return self._call(args, kwargs)
        T, B = max(x.shape[0] for x in trains), trains[0].shape[1]
        if any(x.shape[0] not in (1, T) for x in trains):
            steps = sorted({x.shape[0] for x in trains})
            raise ValueError(
                f"operation {self.node!r} combines signals with {steps} timesteps; they need an "
                "alignment point (qac.align.TimeAlign) on each operand"
            )

        def fold(x: torch.Tensor) -> torch.Tensor:
            return x.expand(T, *x.shape[1:]).flatten(0, 1)

        return _unfold(self._call(*_map_signals((args, kwargs), self.template, fold)), T, B)

    def extra_repr(self) -> str:
        return f"{self.node}: {self.method or getattr(self.fn, '__name__', self.fn)}"


def _map_signals(value: Any, template: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """``value`` with ``fn`` applied to the tensors where ``template`` marks a signal."""
    if template is _Signal:
        return fn(value) if isinstance(value, torch.Tensor) else value
    if isinstance(template, tuple | list) and isinstance(value, tuple | list):
        return type(value)(_map_signals(v, t, fn) for v, t in zip(value, template, strict=True))
    if isinstance(template, dict) and isinstance(value, dict):
        return {k: _map_signals(v, template[k], fn) for k, v in value.items()}
    return value


def _unfold(y: Any, T: int, B: int) -> Any:
    if isinstance(y, torch.Tensor) and y.dim() > 0 and y.shape[0] == T * B:
        return y.unflatten(0, (T, B))
    if type(y) in (tuple, list):  # split / chunk
        return type(y)(_unfold(v, T, B) for v in y)
    return y


def _fold_functional_nodes(body: fx.GraphModule) -> None:
    """Run every functional operation on signals through a :class:`TimeFoldedOp`."""
    signals = prepare.signal_nodes(body.graph)
    for node in list(body.graph.nodes):
        if node not in signals or node.op not in ("call_function", "call_method"):
            continue
        template = fx.node.map_arg(
            (node.args, node.kwargs), lambda a: _Signal if a in signals else a
        )
        name = prepare.unique_name(body, f"time_folded_ops.{node.name}")
        body.add_submodule(name, TimeFoldedOp(node.target, template, node.name))
        node.op, node.target = "call_module", name
    body.recompile()


def quantizers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """``(name, module)`` for every activation quantizer, in forward order."""
    return ((n, m) for n, m in model.named_modules() if is_quantizer(m))


def neurons(model: nn.Module) -> Iterator[tuple[str, IFNeuron]]:
    """``(name, neuron)`` for every IF neuron, in forward order."""
    return ((n, m) for n, m in model.named_modules() if isinstance(m, IFNeuron))


class SpikingNetwork(nn.Module):
    """A converted mixed-timestep SNN. ``forward(images)`` returns time-averaged logits.

    Two simulations of the same equations:

    - the fast one (default): time folded into the batch, inputs constant in time kept as one
      step (layers behind an ``average`` alignment run once), the fused IF kernel
      (:mod:`qac.kernels`) and, on CPUs, micro-batches sized so that the largest folded
      activation (``T_l x b`` samples) stays within ``fold_budget_mib`` of cache;
    - the reference one (:meth:`set_reference`): every signal materialised with all its steps,
      every stateless layer called once per step, the IF neuron written as Eqs. 1-3 with an
      explicit comparison, no micro-batches. Tests check both give the same spikes.

    ``micro_batch``: ``"auto"`` (CPU: from ``fold_budget_mib``; GPU: whole batch), ``0``
    (whole batch) or a number of images per chunk. Results do not depend on it.
    """

    def __init__(
        self,
        body: nn.Module,
        policy: AlignmentPolicy,
        *,
        micro_batch: int | str = "auto",
        fold_budget_mib: float = 16.0,
    ) -> None:
        super().__init__()
        self.body = body
        self.policy = policy
        if not (micro_batch == "auto" or (isinstance(micro_batch, int) and micro_batch >= 0)):
            raise ValueError(f"micro_batch must be 'auto' or an integer >= 0, got {micro_batch!r}")
        if not fold_budget_mib > 0:
            raise ValueError(f"fold_budget_mib must be positive, got {fold_budget_mib}")
        self.micro_batch = micro_batch
        self.fold_budget_mib = float(fold_budget_mib)
        self.reference = False
        self._sample_bytes: dict[tuple[int, ...], int] = {}

    def set_reference(self, reference: bool = True) -> None:
        """Switch between the fast simulation and the plain per-step reference."""
        self.reference = reference
        for m in self.body.modules():
            if isinstance(m, TimeFolded):
                m.per_step = reference
            elif isinstance(m, IFNeuron):
                m.reference = reference
            elif isinstance(m, TimeAlign):
                m.materialize = reference

    def _splits(self, images: torch.Tensor) -> bool:
        if self.reference or self.micro_batch == 0:
            return False
        return self.micro_batch != "auto" or images.device.type == "cpu"

    def _auto_size(self, key: tuple[int, ...], batch: int) -> int:
        budget = self.fold_budget_mib * 2**20
        return max(1, min(batch, int(budget // max(self._sample_bytes[key], 1))))

    def micro_batch_size(self, images: torch.Tensor) -> int:
        """Images per chunk for ``images`` (``B`` when no split is wanted). In ``auto`` mode the
        first call simulates one image to measure the largest folded activation."""
        B = images.shape[0]
        if not self._splits(images):
            return B
        if self.micro_batch != "auto":
            return min(B, int(self.micro_batch))
        key = tuple(images.shape[1:])
        if key not in self._sample_bytes:
            records = {m: m.record for m in self.modules() if hasattr(m, "record")}
            for m in records:
                m.record = False
            try:
                with torch.no_grad():
                    self._probe(images[:1])
            finally:
                for m, flag in records.items():
                    m.record = flag
        return self._auto_size(key, B)

    def _probe(self, one_image: torch.Tensor) -> torch.Tensor:
        """Simulate one image, recording the bytes of the largest neuron output (all steps)."""
        sizes: list[int] = []
        hooks = [
            n.register_forward_hook(lambda m, i, o: sizes.append(o.numel() * o.element_size()))
            for _, n in neurons(self.body)
        ]
        try:
            out = self.body(one_image.unsqueeze(0))
        finally:
            for h in hooks:
                h.remove()
        self._sample_bytes[tuple(one_image.shape[1:])] = max(sizes, default=1)
        return out

    def forward_steps(self, images: torch.Tensor) -> torch.Tensor:
        """Per-step outputs of the last layer: ``[T_last, B, classes]`` (``[1, B, classes]``
        when constant in time).

        With micro-batches, forward hooks inside the network fire once per chunk (and, in
        ``auto`` mode, a first chunk of one image measures the activation size); set
        ``micro_batch = 0`` where hooks must see the whole batch at once.
        """
        if not self._splits(images):
            return self.body(images.unsqueeze(0))
        outs: list[torch.Tensor] = []
        rest = images
        if self.micro_batch == "auto" and tuple(images.shape[1:]) not in self._sample_bytes:
            outs.append(self._probe(images[:1]))  # the first image doubles as the size probe
            rest = images[1:]
        size = self.micro_batch_size(images)  # known now: no second probe
        if not outs and size >= images.shape[0]:
            return self.body(images.unsqueeze(0))
        outs += [self.body(c.unsqueeze(0)) for c in rest.split(size)] if len(rest) else []
        return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]

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
    micro_batch: int | str = "auto",
) -> SpikingNetwork:
    """Convert a quantized ANN into a mixed-timestep SNN (the ANN itself is left untouched).

    Args:
        model: a model from :func:`qac.models.build` with QAC or QCFS activations, or any
            other model whose activations are quantizers, e.g. from
            :func:`qac.prepare.prepare_qat`: it is traced with ``torch.fx``, every operation
            is checked (:class:`qac.prepare.UnsupportedOperationError` otherwise), alignment
            points are inserted where the model has none, and the functional operations
            (``+``, ``torch.cat``, ``torch.flatten``, views) run with time folded into the
            batch (:class:`TimeFoldedOp`).
        policy: alignment policy name (see :data:`qac.align.POLICIES`) or object.
        v0: initial membrane potential: ``"half"`` (v_th/2), ``"zero"``, a number, or a dict
            ``{layer name: tensor}`` (e.g. from calibration).
        temporal_scale: k; every layer runs ``k * T_l`` steps (Table 5 / Fig. 3).
        timesteps: run every layer for this many steps instead of its own T (QCFS sweeps).
        surrogate, surrogate_width: the IF neurons' surrogate gradient (for calibration).
        micro_batch: images per simulation chunk (see :class:`SpikingNetwork`).
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
            "'qac' or 'qcfs' (or qac.prepare.prepare_qat) and train it (Algorithm 1) before "
            "converting"
        )
    body = copy.deepcopy(model).eval()
    generic = isinstance(body, fx.GraphModule) or not any(
        isinstance(m, TimeAlign) for m in body.modules()
    )
    if generic:  # not from qac.models: trace, check and find the alignment points
        body = prepare.for_conversion(body)
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
    if generic:
        _fold_functional_nodes(body)
    return SpikingNetwork(body, policy, micro_batch=micro_batch)


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
    micro_batch = snn.micro_batch
    ann.eval()
    snn.micro_batch = 0  # the hooks keep one output per layer: no chunks
    try:
        logits_ann = ann(images)
        logits_snn = snn(images)
    finally:
        ann.train(was_training)
        snn.micro_batch = micro_batch
        for h in hooks:
            h.remove()
    errors = {name: float((snn_out[name] - ann_out[name]).abs().max()) for name in ann_out}
    errors["logits"] = float((logits_snn - logits_ann).abs().max())
    return errors


def _store(bucket: dict[str, torch.Tensor], name: str, *, time_avg: bool):
    def hook(_module, _inputs, output):
        bucket[name] = output.mean(dim=0) if time_avg else output

    return hook
