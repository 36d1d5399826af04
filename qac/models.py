"""The paper's architectures, built with any activation (ReLU, QAC quantizer, QCFS quantizer).

Algorithm 1 (lines 1-8) replaces every ReLU by a quantizer and every max-pooling layer by
average pooling; these builders do both by construction. Every synaptic path that reads a
neuron's output starts with a :class:`qac.align.TimeAlign` placeholder (identity in the ANN) so
that :func:`qac.convert.to_snn` can align timesteps between layers.

Architectures (``build(arch, ...)``):

- ``vgg16``: CIFAR VGG-16 with batch norm, as in the QCFS code (13 conv-BN-act layers, average
  pooling, classifier 512-4096-4096-classes with dropout).
- ``resnet18``: CIFAR ResNet-18 with a 3x3 stride-1 stem (no pooling), as in the QCFS code.
- ``resnet20``: the narrow CIFAR ResNet-20 of He et al. (2016) (16/32/64 channels, 3x3 blocks per
  stage, 1x1-conv projection shortcuts where the shape changes), as ``resnet20`` in the QCFS code.
- ``vgg16_imagenet``: torchvision's ``vgg16_bn`` layer for layer (checked by the tests), with
  average pooling.
- ``resnet34_imagenet``: torchvision's ``resnet34`` layer for layer (checked by the tests),
  with the stem's max pooling replaced by average pooling; every activation is its own module
  (torchvision reuses one ReLU per block, which would tie two layers' timesteps).

``width`` scales every channel count (smoke-scale runs use small widths).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from qac.align import TimeAlign
from qac.quant import QACQuantizer, QCFSQuantizer

__all__ = ["build", "make_activation", "ARCHITECTURES", "register", "architecture_names"]

ActivationSpec = str | dict | Callable[[], nn.Module]
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable:
    """Decorator adding a model constructor to :data:`ARCHITECTURES` (timm-style registry)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        ARCHITECTURES[name] = fn
        return fn

    return wrap


def architecture_names() -> list[str]:
    return sorted(ARCHITECTURES)


def make_activation(spec: ActivationSpec = "relu", **kwargs: Any) -> Callable[[], nn.Module]:
    """A factory of fresh activation modules.

    ``spec`` is ``"relu"``, ``"qac"`` (kwargs: ``case``, ``alpha``, ``timesteps``,
    ``integer_timesteps``), ``"qcfs"`` (kwargs: ``levels``, ``theta``), a dict
    ``{"name": ..., **kwargs}``, or any zero-argument callable returning a module.
    """
    if callable(spec) and not isinstance(spec, str):
        return spec
    if isinstance(spec, dict):
        kwargs = {**{k: v for k, v in spec.items() if k != "name"}, **kwargs}
        spec = spec.get("name", "relu")
    name = str(spec).lower()
    if name == "relu":
        if kwargs:
            raise ValueError(f"relu takes no options, got {sorted(kwargs)}")
        return lambda: nn.ReLU(inplace=False)
    if name == "qac":
        kwargs.setdefault("case", 4)
        return lambda: QACQuantizer(**kwargs)
    if name == "qcfs":
        kwargs.setdefault("levels", 8)
        return lambda: QCFSQuantizer(**kwargs)
    raise ValueError(f"unknown activation {spec!r}: expected 'relu', 'qac' or 'qcfs'")


def _ch(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


# ---------------------------------------------------------------------------------------------
# VGG-16
# ---------------------------------------------------------------------------------------------
VGG16_STAGES = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]


class VGG(nn.Module):
    """VGG with BN; ``imagenet=True`` gives torchvision's vgg16_bn head (7x7 pool, 25088 in)."""

    def __init__(
        self,
        num_classes: int,
        act: Callable[[], nn.Module],
        *,
        width: float = 1.0,
        imagenet: bool = False,
        dropout: float | None = None,
        hidden: int = 4096,
    ) -> None:
        super().__init__()
        dropout = (0.5 if imagenet else 0.0) if dropout is None else dropout
        layers: list[nn.Module] = []
        in_ch, acts = 3, []
        for stage in VGG16_STAGES:
            for channels in stage:
                out_ch = _ch(channels, width)
                a = act()
                acts.append(a)
                layers += [
                    TimeAlign(a),
                    nn.Conv2d(in_ch, out_ch, 3, padding=1),
                    nn.BatchNorm2d(out_ch),
                    a,
                ]
                in_ch = out_ch
            layers.append(nn.AvgPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        hidden = _ch(hidden, width)
        if imagenet:
            self.pool: nn.Module = nn.AdaptiveAvgPool2d((7, 7))
            flat = in_ch * 49
        else:
            self.pool = nn.Identity()
            flat = in_ch
        a1, a2 = act(), act()
        self.classifier = nn.Sequential(
            nn.Flatten(1),
            TimeAlign(a1),
            nn.Linear(flat, hidden),
            a1,
            nn.Dropout(dropout),
            TimeAlign(a2),
            nn.Linear(hidden, hidden),
            a2,
            nn.Dropout(dropout),
            TimeAlign(None),
            nn.Linear(hidden, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):  # PyTorch's default weights, zero bias (QCFS code)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


@register("vgg16")
def vgg16(num_classes: int = 10, activation: ActivationSpec = "relu", width: float = 1.0, **kw):
    """CIFAR VGG-16 (BN), as in the QCFS code."""
    return VGG(num_classes, make_activation(activation, **kw), width=width, hidden=4096)


@register("vgg16_imagenet")
def vgg16_imagenet(
    num_classes: int = 1000, activation: ActivationSpec = "relu", width: float = 1.0, **kw
):
    """ImageNet VGG-16 (BN): torchvision's ``vgg16_bn`` with average pooling."""
    return VGG(num_classes, make_activation(activation, **kw), width=width, imagenet=True)


# ---------------------------------------------------------------------------------------------
# ResNets
# ---------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """3x3-3x3 residual block; both branches are aligned to the T of the neuron after the sum."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, act: Callable[[], nn.Module]):
        super().__init__()
        act1, act2 = act(), act()
        self.residual = nn.Sequential(
            TimeAlign(act1),
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            act1,
            TimeAlign(act2),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        shortcut: list[nn.Module] = [TimeAlign(act2)]
        if stride != 1 or in_ch != out_ch:
            shortcut += [
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            ]
        self.shortcut = nn.Sequential(*shortcut)
        self.act2 = act2  # registered after both branches: modules are listed in compute order

    def forward(self, x):
        # In the SNN both operands are [T, B, ...] (or [1, B, ...] when constant in time).
        return self.act2(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet with basic blocks; CIFAR (3x3 stem) or ImageNet (7x7/2 stem + avg pool) input."""

    def __init__(
        self,
        blocks: list[int],
        channels: list[int],
        num_classes: int,
        act: Callable[[], nn.Module],
        *,
        width: float = 1.0,
        imagenet: bool = False,
    ) -> None:
        super().__init__()
        channels = [_ch(c, width) for c in channels]
        stem_ch = channels[0]
        a = act()
        if imagenet:
            self.stem = nn.Sequential(
                TimeAlign(a),
                nn.Conv2d(3, stem_ch, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(stem_ch),
                a,
                nn.AvgPool2d(3, stride=2, padding=1),
            )
        else:
            self.stem = nn.Sequential(
                TimeAlign(a),
                nn.Conv2d(3, stem_ch, 3, padding=1, bias=False),
                nn.BatchNorm2d(stem_ch),
                a,
            )
        stages, in_ch = [], stem_ch
        for i, (n, out_ch) in enumerate(zip(blocks, channels, strict=True)):
            stride = 1 if i == 0 else 2
            stage = []
            for j in range(n):
                stage.append(BasicBlock(in_ch, out_ch, stride if j == 0 else 1, act))
                in_ch = out_ch
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), TimeAlign(None), nn.Linear(in_ch, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.head(self.layers(self.stem(x)))


@register("resnet18")
def resnet18(num_classes: int = 10, activation: ActivationSpec = "relu", width: float = 1.0, **kw):
    """CIFAR ResNet-18 (3x3 stem, 64-128-256-512), as in the QCFS code."""
    act = make_activation(activation, **kw)
    return ResNet([2, 2, 2, 2], [64, 128, 256, 512], num_classes, act, width=width)


@register("resnet20")
def resnet20(num_classes: int = 10, activation: ActivationSpec = "relu", width: float = 1.0, **kw):
    """CIFAR ResNet-20 (He et al., 2016): 16-32-64 channels, 3 blocks per stage."""
    act = make_activation(activation, **kw)
    return ResNet([3, 3, 3], [16, 32, 64], num_classes, act, width=width)


@register("resnet34_imagenet")
def resnet34_imagenet(
    num_classes: int = 1000, activation: ActivationSpec = "relu", width: float = 1.0, **kw
):
    """ImageNet ResNet-34: torchvision's ``resnet34`` with an average-pooling stem."""
    act = make_activation(activation, **kw)
    return ResNet([3, 4, 6, 3], [64, 128, 256, 512], num_classes, act, width=width, imagenet=True)


def build(
    arch: str,
    num_classes: int,
    activation: ActivationSpec = "relu",
    *,
    width: float = 1.0,
    **activation_kwargs: Any,
) -> nn.Module:
    """Build ``arch`` with ``num_classes`` outputs and the given activation.

    Example: ``build("resnet20", 10, activation="qac", case=4, alpha=8.0, timesteps=4)``.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}: expected one of {architecture_names()}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    model = ARCHITECTURES[arch](
        num_classes=int(num_classes), activation=activation, width=width, **activation_kwargs
    )
    model.arch = arch  # type: ignore[assignment]
    return model
