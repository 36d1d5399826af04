"""Training augmentation of :mod:`qac.data`, batched on the device, plus the lazy ImageNet crop.

Augmentation (:class:`AugmentConfig`, QCFS recipe) happens on the batch: random crop with zero
padding, horizontal flip (both per image), optional AutoAugment (torchvision's CIFAR-10 policy
table and magnitudes, an independent draw per image, fill 128 as in the ``CIFAR10Policy``
implementation used by QCFS), normalisation, then optional Cutout (one square hole zeroed *after*
normalisation, as in QCFS/DeVries).  ImageNet (lazy) uses RandomResizedCrop(224) + flip (+
AutoAugment ImageNet policy) per item in the workers; Cutout is applied on the batch.  All
randomness comes from a ``torch.Generator`` seeded from ``(seed, epoch)``, so identical seeds give
identical batches, with any number of workers; crop/flip/cutout draws are also identical across
devices (AutoAugment's float ops may round differently on GPU than on CPU).

:class:`qac.data.BatchLoader` draws and applies these; :func:`autoaugment_batch` is a hand port
of torchvision's AutoAugment that processes a whole batch at once (docs/assumptions.md records
the measured reason).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "autoaugment_batch"]


@dataclass
class AugmentConfig:
    """Training augmentation (QCFS recipe).

    ``crop_padding``: random crop back to the input size after zero padding by this many pixels
    (0 = off).  ``flip``: random horizontal flip.  ``autoaugment``: AutoAugment (CIFAR-10 policy
    for in-memory data, ImageNet policy for the lazy ImageNet dataset).  ``cutout``: side length of
    one square hole (0 = off; QCFS uses 16 on CIFAR).  ``color_jitter``: (brightness, contrast,
    saturation, hue) of torchvision's ``ColorJitter``, after the flip, for the lazy ImageNet
    dataset only (QCFS's ImageNet loader uses (0.2, 0.2, 0.2, 0.1)); None = off.  For ImageNet
    ``crop_padding`` is ignored: training always uses RandomResizedCrop.
    """

    crop_padding: int = 4
    flip: bool = True
    autoaugment: bool = False
    cutout: int = 0
    color_jitter: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.color_jitter is not None:
            values = tuple(self.color_jitter)
            if len(values) != 4 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values
            ):
                raise ValueError(
                    "color_jitter must be 4 non-negative numbers (brightness, contrast, "
                    f"saturation, hue), got {self.color_jitter!r}"
                )
            self.color_jitter = values  # type: ignore[assignment]

    @classmethod
    def none(cls) -> AugmentConfig:
        """No augmentation at all (shuffling only)."""
        return cls(crop_padding=0, flip=False, autoaugment=False, cutout=0)


def _random_resized_crop_params(
    height: int,
    width: int,
    g: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params, drawing from ``g``."""
    area = height * width
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=g).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1])
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, (1,), generator=g))
            j = int(torch.randint(0, width - w + 1, (1,), generator=g))
            return i, j, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- AutoAugment


# AutoAugment, CIFAR-10 policy (Cubuk et al. 2019), exactly torchvision's table and magnitudes.
_AA_CIFAR10_POLICY: tuple[
    tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...
] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)
_AA_SIGNED = frozenset(
    {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
     "Sharpness"}
)  # fmt: skip


def _aa_magnitude(op: str, level: int | None, height: int, width: int) -> float:
    """Magnitude of ``op`` at bin ``level`` of 10 (torchvision's AutoAugment space)."""
    if level is None:
        return 0.0
    top = {
        "ShearX": 0.3, "ShearY": 0.3, "TranslateX": 150.0 / 331.0 * width,
        "TranslateY": 150.0 / 331.0 * height, "Rotate": 30.0, "Brightness": 0.9, "Color": 0.9,
        "Contrast": 0.9, "Sharpness": 0.9,
    }  # fmt: skip
    if op in top:
        return float(torch.linspace(0.0, top[op], 10)[level])
    if op == "Posterize":
        return float(int((8 - torch.arange(10) / (9 / 4)).round()[level]))
    if op == "Solarize":
        return float(torch.linspace(1.0, 0.0, 10)[level])
    return 0.0


def _aa_apply(x: torch.Tensor, op: str, magnitude: float, fill: float = 128.0) -> torch.Tensor:
    """Apply one AutoAugment op to a uint8 batch (same maths as torchvision's AutoAugment)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    nearest = InterpolationMode.NEAREST
    fill_ = [fill]
    if op in ("ShearX", "ShearY"):
        deg = math.degrees(math.atan(magnitude))
        shear = [deg, 0.0] if op == "ShearX" else [0.0, deg]
        return TF.affine(
            x, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, interpolation=nearest,
            fill=fill_, center=[0, 0],
        )  # fmt: skip
    if op in ("TranslateX", "TranslateY"):
        t = [int(magnitude), 0] if op == "TranslateX" else [0, int(magnitude)]
        return TF.affine(
            x, angle=0.0, translate=t, scale=1.0, shear=[0.0, 0.0], interpolation=nearest,
            fill=fill_,
        )  # fmt: skip
    if op == "Rotate":
        return TF.rotate(x, angle=magnitude, interpolation=nearest, fill=fill_)
    if op == "Brightness":
        return TF.adjust_brightness(x, brightness_factor=1.0 + magnitude)
    if op == "Color":
        return TF.adjust_saturation(x, saturation_factor=1.0 + magnitude)
    if op == "Contrast":
        return TF.adjust_contrast(x, contrast_factor=1.0 + magnitude)
    if op == "Sharpness":
        return TF.adjust_sharpness(x, sharpness_factor=1.0 + magnitude)
    if op == "Posterize":
        return TF.posterize(x, bits=int(magnitude))
    if op == "Solarize":
        return TF.solarize(x, threshold=255.0 * magnitude)
    if op == "AutoContrast":
        return TF.autocontrast(x)
    if op == "Equalize":
        return TF.equalize(x)
    if op == "Invert":
        return TF.invert(x)
    raise ValueError(f"unknown AutoAugment op {op!r}")


def autoaugment_batch(x: torch.Tensor, g: torch.Generator, fill: float = 128.0) -> torch.Tensor:
    """AutoAugment (CIFAR-10 policy) with an independent draw per image, on a uint8 batch.

    Per image: a sub-policy uniformly at random, each of its two ops applied with its probability,
    signed magnitudes negated with probability 0.5 (same distribution as torchvision's
    ``AutoAugment(CIFAR10)``).  Within each of the two stages, images drawing the same
    (op, magnitude) are processed together; every op acts on each image independently, so the
    result equals per-image application.  Works on any device.
    """
    b, _, h, w = x.shape
    pol = torch.randint(0, len(_AA_CIFAR10_POLICY), (b,), generator=g).tolist()
    u = torch.rand(b, 4, generator=g).tolist()
    out = x.clone()
    for stage in (0, 1):
        groups: dict[tuple[str, float], list[int]] = {}
        for i in range(b):
            op, prob, level = _AA_CIFAR10_POLICY[pol[i]][stage]
            if u[i][2 * stage] <= prob:
                mag = _aa_magnitude(op, level, h, w)
                if op in _AA_SIGNED and u[i][2 * stage + 1] <= 0.5:
                    mag = -mag
                groups.setdefault((op, mag), []).append(i)
        for (op, mag), members in sorted(groups.items()):
            idx = torch.tensor(members, device=x.device)
            out[idx] = _aa_apply(out.index_select(0, idx), op, mag, fill)
    return out


# --------------------------------------------------------------------------- crop / cutout


def _random_crop(x: torch.Tensor, pad: int, offsets: torch.Tensor) -> torch.Tensor:
    """Per-image crop of zero-padded ``x`` [B,C,H,W] at ``offsets`` [B,2] (top, left)."""
    b, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)  # [B,H]
    xp = xp.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pad))
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)  # [B,W]
    return xp.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def _cutout(x: torch.Tensor, length: int, centres: torch.Tensor) -> torch.Tensor:
    """Zero one ``length`` square per image, centred at ``centres`` [B,2] (clipped at borders)."""
    _, _, h, w = x.shape
    y1 = (centres[:, 0] - length // 2).clamp(0, h)
    y2 = (centres[:, 0] + length // 2).clamp(0, h)
    x1 = (centres[:, 1] - length // 2).clamp(0, w)
    x2 = (centres[:, 1] + length // 2).clamp(0, w)
    r = torch.arange(h, device=x.device)
    c = torch.arange(w, device=x.device)
    my = (r[None] >= y1[:, None]) & (r[None] < y2[:, None])  # [B,H]
    mx = (c[None] >= x1[:, None]) & (c[None] < x2[:, None])  # [B,W]
    mask = my[:, :, None] & mx[:, None, :]
    return x.masked_fill(mask[:, None], 0.0)
