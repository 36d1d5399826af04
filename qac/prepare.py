"""Prepare any ``nn.Module`` for quantization-aware training and conversion (Algorithm 1, l. 1-8).

:func:`prepare_qat` traces a model with ``torch.fx`` and returns a copy
(a :class:`torch.fx.GraphModule`) in which

- every ReLU (``nn.ReLU``, ``F.relu``, ``torch.relu``, ``x.relu()``, their in-place forms) and
  every ReLU6 (``nn.ReLU6``, ``F.relu6``: the quantizer clips at its learnable ``alpha``, which
  takes the place of the fixed ceiling 6) is a fresh quantizer module, one per call site
  (torchvision reuses one ``nn.ReLU`` per block; each use becomes its own layer with its own T);
- every max pooling (``nn.MaxPool1d/2d/3d``, ``nn.AdaptiveMaxPool1d/2d/3d`` and the functional
  forms) is the average pooling of the same window (padding counted as zeros, as in
  :mod:`qac.models`); functional dropout becomes an ``nn.Dropout`` module so that ``eval()``
  turns it off (fx would freeze ``training=self.training`` at trace time);
- every synaptic path that reads a neuron's output starts with a :class:`~qac.align.TimeAlign`
  placeholder naming the neuron it feeds (identity in the ANN), as the built-in models have, so
  that :func:`qac.convert.to_snn` can align the timesteps of the operands of additions and
  concatenations.

Everything else must be linear in each time step, so that averaging over time commutes with it
and the SNN can reproduce the quantized ANN exactly (conv, linear, batch norm in eval mode,
average pooling, padding, upsampling, dropout, flatten/view/reshape/permute/cat/split,
sums of activations, products with constants). Anything else - GELU, SiLU, sigmoid, tanh,
softmax, LeakyReLU, LayerNorm/GroupNorm, attention, products or quotients of two activations,
data-dependent control flow - raises :class:`UnsupportedOperationError` naming the operation,
the fx node and the module path, before any training.

Usage::

    model = prepare_qat(torchvision.models.resnet18(num_classes=10), "qac", case=4, alpha=4.0)
    # ... train it (quantization-aware), then
    snn = qac.convert.to_snn(model.eval(), policy="aver+aver")
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from qac.align import TimeAlign
from qac.models import ActivationSpec, make_activation
from qac.quant import is_quantizer

__all__ = [
    "UnsupportedOperationError",
    "prepare_qat",
    "trace",
    "check_convertible",
    "insert_alignment",
    "for_conversion",
    "signal_nodes",
    "unique_name",
]


class UnsupportedOperationError(ValueError):
    """An operation that the converter cannot turn into an exact SNN (raised before training)."""


_RELU_MODULES = (nn.ReLU, nn.ReLU6)
_RELU_FUNCTIONS = {F.relu, F.relu_, torch.relu, torch.relu_, F.relu6}
_RELU_METHODS = {"relu", "relu_"}

_MAX_TO_AVG: dict[type[nn.Module], type[nn.Module]] = {
    nn.MaxPool1d: nn.AvgPool1d,
    nn.MaxPool2d: nn.AvgPool2d,
    nn.MaxPool3d: nn.AvgPool3d,
    nn.AdaptiveMaxPool1d: nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool2d: nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool3d: nn.AdaptiveAvgPool3d,
}
_POOL = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_ADAPTIVE = ("output_size", "return_indices")
_DROP = ("p", "training", "inplace")
# functional forms rebuilt as modules: (module class, the function's parameters after the input)
_MAX_FUNCTIONS: dict[Callable, tuple[type[nn.Module], tuple[str, ...]]] = {
    F.max_pool1d: (nn.MaxPool1d, _POOL),
    F.max_pool2d: (nn.MaxPool2d, _POOL),
    F.max_pool3d: (nn.MaxPool3d, _POOL),
    F.adaptive_max_pool1d: (nn.AdaptiveMaxPool1d, _ADAPTIVE),
    F.adaptive_max_pool2d: (nn.AdaptiveMaxPool2d, _ADAPTIVE),
    F.adaptive_max_pool3d: (nn.AdaptiveMaxPool3d, _ADAPTIVE),
}
_DROPOUT_FUNCTIONS: dict[Callable, tuple[type[nn.Module], tuple[str, ...]]] = {
    F.dropout: (nn.Dropout, _DROP),
    F.dropout1d: (nn.Dropout1d, _DROP),
    F.dropout2d: (nn.Dropout2d, _DROP),
    F.dropout3d: (nn.Dropout3d, _DROP),
}
_FUNCTION_TO_MODULE = {**_MAX_FUNCTIONS, **_DROPOUT_FUNCTIONS}

# Operations that are affine in each time step (they commute with time averaging).
_LINEAR_MODULES = (
    TimeAlign,
    nn.Identity,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.ZeroPad1d,
    nn.ZeroPad2d,
    nn.ZeroPad3d,
    nn.ConstantPad1d,
    nn.ConstantPad2d,
    nn.ConstantPad3d,
    nn.ReflectionPad1d,
    nn.ReflectionPad2d,
    nn.ReflectionPad3d,
    nn.ReplicationPad1d,
    nn.ReplicationPad2d,
    nn.ReplicationPad3d,
    nn.Upsample,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
    nn.ChannelShuffle,
)
_PRODUCTS = {operator.mul, operator.imul, torch.mul, operator.matmul, torch.matmul, torch.mm}
_PRODUCTS |= {torch.bmm, torch.einsum, F.linear, F.conv1d, F.conv2d, F.conv3d}
_QUOTIENTS = {operator.truediv, operator.itruediv, torch.div, torch.true_divide}
_LINEAR_FUNCTIONS = _PRODUCTS | _QUOTIENTS | set(_DROPOUT_FUNCTIONS)  # dropout: traced in eval
_LINEAR_FUNCTIONS |= {operator.add, operator.iadd, operator.sub, operator.isub, operator.neg}
_LINEAR_FUNCTIONS |= {operator.pos, operator.getitem, getattr, torch._assert, torch.add}
_LINEAR_FUNCTIONS |= {torch.sub, torch.cat, torch.concat, torch.stack, torch.flatten}
_LINEAR_FUNCTIONS |= {torch.reshape, torch.squeeze, torch.unsqueeze, torch.transpose}
_LINEAR_FUNCTIONS |= {torch.permute, torch.chunk, torch.split, torch.narrow, torch.mean}
_LINEAR_FUNCTIONS |= {torch.sum, torch.flip, torch.channel_shuffle, F.avg_pool1d, F.avg_pool2d}
_LINEAR_FUNCTIONS |= {F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.pad}
_LINEAR_FUNCTIONS |= {F.adaptive_avg_pool3d, F.interpolate, F.pixel_shuffle, F.pixel_unshuffle}
_SIZE_METHODS = {"size", "dim"}
_SIZE_ATTRIBUTES = {"shape", "ndim", "dtype", "device"}
_PRODUCT_METHODS = {"mul", "mul_", "matmul", "mm", "bmm"}
_QUOTIENT_METHODS = {"div", "div_", "true_divide"}
_LINEAR_METHODS = _PRODUCT_METHODS | _QUOTIENT_METHODS
_LINEAR_METHODS |= {"add", "add_", "sub", "sub_", "neg", "view", "view_as", "reshape"}
_LINEAR_METHODS |= {"reshape_as", "flatten", "unflatten", "permute", "transpose", "contiguous"}
_LINEAR_METHODS |= {"squeeze", "unsqueeze", "mean", "sum", "size", "dim", "chunk", "split"}
_LINEAR_METHODS |= {"narrow", "expand_as", "clone", "to", "float", "double", "type_as", "flip"}


class _Tracer(fx.Tracer):
    """fx tracer that keeps quantizers and alignment placeholders as leaf modules."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_quantizer(m) or isinstance(m, TimeAlign):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> fx.GraphModule:
    """``model`` (not copied) as a GraphModule; quantizers and TimeAlign stay leaf modules."""
    if isinstance(model, fx.GraphModule):
        return model
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, ... on dynamic control flow
        raise UnsupportedOperationError(
            f"cannot trace {type(model).__name__} with torch.fx ({exc}); the converter needs a "
            "static graph (no data-dependent control flow in forward)"
        ) from exc
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def signal_nodes(graph: fx.Graph) -> set[fx.Node]:
    """Nodes whose value depends on the network input (activations, and sizes read from them)."""
    signals: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(a in signals for a in node.all_input_nodes):
            signals.add(node)
    return signals


def unique_name(root: nn.Module, base: str) -> str:
    """``base``, or ``base_1``, ``base_2``, ... : the first submodule path not taken in root."""
    name, k = base, 0
    while True:
        parent, _, field = name.rpartition(".")
        try:
            owner = root.get_submodule(parent) if parent else root
        except AttributeError:
            return name  # the parent is created by add_submodule
        if not hasattr(owner, field):
            return name
        k += 1
        name = f"{base}_{k}"


def _owner(node: fx.Node) -> str:
    """Path of the module whose forward holds ``node`` ("" for the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    paths = [path for path, _ in stack.values()]
    return paths[-1] if paths else ""


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        what = type(modules[node.target]).__name__
    elif node.op == "call_method":
        what = f"Tensor.{node.target}"
    else:
        what = getattr(node.target, "__name__", str(node.target))
    path = node.target if node.op == "call_module" else _owner(node)
    return f"{what} at node {node.name!r} (module {path or '<top>'!r})"


def _nodes_in(args: Any) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(args, found.append)
    return found


def _activations(graph: fx.Graph) -> set[fx.Node]:
    """Signal nodes that hold activations, not sizes read from them (``x.size(0)``,
    ``x.shape[2:]``, ``h * w``, ...: arithmetic on those is allowed)."""
    signals = signal_nodes(graph)
    sizes: set[fx.Node] = set()
    for node in graph.nodes:
        if node not in signals or node.op not in ("call_function", "call_method"):
            continue
        reads = node.target in _SIZE_METHODS if node.op == "call_method" else False
        reads |= node.target is getattr and node.args[1] in _SIZE_ATTRIBUTES
        if reads or all(a in sizes for a in node.all_input_nodes if a in signals):
            sizes.add(node)
    return signals - sizes


def _reason(node: fx.Node, modules: dict[str, nn.Module], activations: set[fx.Node]) -> str | None:
    """Why ``node`` cannot be converted exactly (None when it can)."""
    target = node.target
    if node.op == "call_module":
        module = modules[target]
        if is_quantizer(module) or isinstance(module, _LINEAR_MODULES):
            return None
        relu = isinstance(module, _RELU_MODULES)
        maxpool = type(module) in _MAX_TO_AVG
    elif node.op in ("call_function", "call_method"):
        method = node.op == "call_method"
        relu = target in (_RELU_METHODS if method else _RELU_FUNCTIONS)
        maxpool = not method and target in _MAX_FUNCTIONS
        products, quotients = (
            (_PRODUCT_METHODS, _QUOTIENT_METHODS) if method else (_PRODUCTS, _QUOTIENTS)
        )
        operands = [a for a in _nodes_in((node.args, node.kwargs)) if a in activations]
        if target in products and len(operands) > 1:
            return "multiplies two activations (not linear in each time step)"
        if target in quotients and any(a in activations for a in _nodes_in(node.args[1:])):
            return "divides by an activation (not linear in each time step)"
        if target in (_LINEAR_METHODS if method else _LINEAR_FUNCTIONS):
            return None
    else:
        return None
    if relu:
        return "is a non-quantized activation: prepare the model with qac.prepare.prepare_qat"
    if maxpool:
        return "is max pooling: prepare the model with qac.prepare.prepare_qat (average pooling)"
    return "is not linear in each time step, so no SNN reproduces it exactly"


def check_convertible(gm: fx.GraphModule) -> None:
    """Raise :class:`UnsupportedOperationError` at the first operation that has no exact SNN."""
    modules = dict(gm.named_modules())
    activations = _activations(gm.graph)
    for node in gm.graph.nodes:
        reason = _reason(node, modules, activations) if node in activations else None
        if reason:
            raise UnsupportedOperationError(f"{_describe(node, modules)} {reason}")


def _bind(node: fx.Node, names: tuple[str, ...]) -> dict[str, Any]:
    """The arguments after the input of a functional call, by name."""
    params = dict(zip(names, node.args[1:], strict=False))
    params.update({k: v for k, v in node.kwargs.items() if k != "input"})
    return params


def _module_for_function(node: fx.Node, modules: dict[str, nn.Module]) -> nn.Module:
    cls, names = _FUNCTION_TO_MODULE[node.target]
    params = _bind(node, names)
    if _nodes_in(params):
        raise UnsupportedOperationError(
            f"{_describe(node, modules)} has arguments computed at run time"
        )
    params.pop("training", None)  # nn.Dropout follows the module's train/eval mode
    return cls(**params)


def _avg_for_max(pool: nn.Module, where: str) -> nn.Module:
    """The average pooling of ``pool``'s window (Algorithm 1, l. 5-7)."""
    dilation = getattr(pool, "dilation", 1)
    if pool.return_indices or any(d != 1 for d in _as_tuple(dilation)):
        raise UnsupportedOperationError(
            f"{where} has no average-pooling equivalent (dilation or return_indices)"
        )
    avg = _MAX_TO_AVG[type(pool)]
    if "Adaptive" in avg.__name__:
        return avg(pool.output_size)
    return avg(pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)


def _as_tuple(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value,)


def _swap(gm: fx.GraphModule, node: fx.Node, name: str, module: nn.Module) -> None:
    """Replace ``node`` by a call of ``module`` (registered at ``name``) on its input."""
    gm.add_submodule(name, module)
    source = node.args[0] if node.args else node.kwargs["input"]
    with gm.graph.inserting_before(node):
        new = gm.graph.call_module(name, (source,))
    new.meta = dict(node.meta)
    node.replace_all_uses_with(new)
    gm.graph.erase_node(node)


def _replace_operations(gm: fx.GraphModule, make: Callable[[], nn.Module]) -> None:
    """ReLU -> fresh quantizer per call site; max pooling -> average pooling; F.dropout ->
    nn.Dropout (Algorithm 1, l. 1-8). Alignment points that named a ReLU module name its
    (first) quantizer."""
    modules = dict(gm.named_modules())
    renamed: dict[int, nn.Module] = {}  # id(ReLU module) -> quantizer at its first call site
    for node in list(gm.graph.nodes):
        module = modules.get(node.target) if node.op == "call_module" else None
        functional = node.op in ("call_function", "call_method")
        if isinstance(module, _RELU_MODULES) or (
            functional and node.target in (_RELU_METHODS | _RELU_FUNCTIONS)
        ):
            quantizer = make()
            if module is not None and id(module) not in renamed:
                name = node.target  # the first call site takes the ReLU's place and name
                renamed[id(module)] = quantizer
            else:
                name = unique_name(gm, node.target if module is not None else _prefixed(node))
            _swap(gm, node, name, quantizer)
        elif module is not None and type(module) in _MAX_TO_AVG:
            _swap(gm, node, node.target, _avg_for_max(module, _describe(node, modules)))
        elif node.op == "call_function" and node.target in _FUNCTION_TO_MODULE:
            replacement = _module_for_function(node, modules)
            if type(replacement) in _MAX_TO_AVG:
                replacement = _avg_for_max(replacement, _describe(node, modules))
            _swap(gm, node, unique_name(gm, _prefixed(node)), replacement)
    for align in gm.modules():
        if isinstance(align, TimeAlign) and id(align.target) in renamed:
            object.__setattr__(align, "target", renamed[id(align.target)])


def _prefixed(node: fx.Node) -> str:
    owner = _owner(node)
    return f"{owner}.{node.name}" if owner else node.name


def _is_quantizer_node(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    return node.op == "call_module" and is_quantizer(modules[node.target])


def _targets_of(gm: fx.GraphModule, signals: set[fx.Node]) -> dict[fx.Node, frozenset]:
    """For each signal node, the quantizer nodes (or ``None``: the output) its value reaches
    without passing through another quantizer."""
    modules = dict(gm.named_modules())
    reach: dict[fx.Node, frozenset] = {}
    for node in reversed(gm.graph.nodes):
        if node not in signals or node.op == "output":
            continue
        found: set[fx.Node | None] = set()
        for user in node.users:
            if user.op == "output":
                found.add(None)
            elif _is_quantizer_node(user, modules):
                found.add(user)
            else:
                found |= reach.get(user, frozenset())
        reach[node] = frozenset(found)
    return reach


def insert_alignment(gm: fx.GraphModule) -> None:
    """Insert a :class:`TimeAlign` at the start of every synaptic path that reads a spike train.

    A path starts at the network input, at a quantizer (a neuron after conversion), or at an
    operation whose value reaches several neurons; it gets one placeholder per neuron it reaches,
    shared by the users that reach only that neuron. Then the operands of an addition or a
    concatenation that feeds a neuron are aligned to that neuron's T, as in the built-in
    residual blocks; paths to the output need no alignment (the output is time-averaged).
    """
    modules = dict(gm.named_modules())
    reach = _targets_of(gm, signal_nodes(gm.graph))
    for node in list(gm.graph.nodes):
        neuron = _is_quantizer_node(node, modules)
        starts = node.op == "placeholder" or neuron or len(reach.get(node, ())) > 1
        if node not in reach or not starts:
            continue
        groups: dict[fx.Node, list[fx.Node]] = {}
        for user in list(node.users):
            mine = _is_quantizer_node(user, modules)
            targets = frozenset({user}) if mine else reach.get(user, frozenset())
            if len(targets) == 1 and None not in targets:
                groups.setdefault(next(iter(targets)), []).append(user)
        for target, users in groups.items():
            name = unique_name(gm, f"{target.target}_align")
            gm.add_submodule(name, TimeAlign(modules[target.target]))
            with gm.graph.inserting_after(node):
                aligned = gm.graph.call_module(name, (node,))
            for user in users:
                user.replace_input_with(node, aligned)


def _checked_and_aligned(gm: fx.GraphModule, class_name: str, training: bool) -> fx.GraphModule:
    """Check every operation, insert the alignment points (unless the model has its own) and
    rebuild ``gm`` so that its modules are registered in forward order (as ``quantizers`` and
    ``neurons`` list them) and unused ones are dropped."""
    check_convertible(gm)
    if not any(isinstance(m, TimeAlign) for m in gm.modules()):
        insert_alignment(gm)
    gm.graph.lint()
    return fx.GraphModule(gm, gm.graph, class_name).train(training)


def for_conversion(model: nn.Module) -> fx.GraphModule:
    """``model`` (already copied by the caller) traced, checked and given alignment points;
    used by :func:`qac.convert.to_snn` for models that are not built by :mod:`qac.models`."""
    return _checked_and_aligned(trace(model), type(model).__name__, model.training)


def prepare_qat(
    model: nn.Module, quantizer: ActivationSpec = "qac", **quantizer_kwargs: Any
) -> fx.GraphModule:
    """A copy of ``model`` ready for quantization-aware training and :func:`qac.convert.to_snn`.

    Args:
        model: any ``nn.Module`` that ``torch.fx`` can trace (the model is not modified).
        quantizer: ``"qac"`` (kwargs ``case`` (default 4), ``alpha``, ``timesteps``, ...: see
            :class:`qac.quant.QACQuantizer`), ``"qcfs"`` (``levels``, ``theta``) or a
            zero-argument callable returning a quantizer module.
        quantizer_kwargs: initial values given to every quantizer.

    Raises:
        UnsupportedOperationError: an operation with no exact SNN (see the module docstring).
    """
    make = make_activation(quantizer, **quantizer_kwargs)
    if not is_quantizer(make()):  # also checks the kwargs once, before tracing
        raise ValueError(f"quantizer must make QAC or QCFS quantizers, got {quantizer!r}")
    gm = trace(copy.deepcopy(model))
    _replace_operations(gm, make)
    return _checked_and_aligned(gm, type(model).__name__, model.training)
