"""Tests for qac.data.augment: crop, flip, Cutout and the AutoAugment port."""

from __future__ import annotations

import torch

from qac import data as D
from qac.data import (
    AugmentConfig,
    BatchLoader,
    TensorImageDataset,
)
from qac.data.augment import _AA_SIGNED, _aa_apply, _aa_magnitude


def test_crop_and_flip_are_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=g)
    ds = TensorImageDataset(
        images=img.expand(64, 3, 16, 16).clone(),
        labels=torch.zeros(64, dtype=torch.int64),
        num_classes=1,
        classes=["x"],
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )
    x, _ = next(iter(BatchLoader(ds, 64, train=True, augment=AugmentConfig(), seed=0)))
    distinct = {tuple(v.flatten().tolist()) for v in (x * 255).round().to(torch.uint8)}
    assert len(distinct) > 20  # 81 offsets x 2 flips: identical inputs, different outputs
    # every output is a window of the zero-padded (possibly mirrored) original
    padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
    windows = {
        tuple(v[:, i : i + 16, j : j + 16].flatten().tolist())
        for v in (padded, padded.flip(-1))
        for i in range(9)
        for j in range(9)
    }
    assert distinct <= windows
    # flip only: output is the image or its mirror, and both occur
    x, _ = next(iter(BatchLoader(ds, 64, train=True, augment=AugmentConfig(0, True), seed=0)))
    u8 = (x * 255).round().to(torch.uint8)
    flipped = torch.tensor([torch.equal(v, img.flip(-1)) for v in u8])
    plain = torch.tensor([torch.equal(v, img) for v in u8])
    assert bool((flipped | plain).all()) and 10 < int(flipped.sum()) < 54


def test_cutout_zeroes_one_square_after_normalisation() -> None:
    ds = TensorImageDataset(
        images=torch.full((32, 3, 20, 20), 200, dtype=torch.uint8),
        labels=torch.zeros(32, dtype=torch.int64),
        num_classes=1,
        classes=["x"],
        mean=(0.1, 0.2, 0.3),
        std=(0.5, 0.5, 0.5),
    )
    aug = AugmentConfig(crop_padding=0, flip=False, cutout=8)
    x, _ = next(iter(BatchLoader(ds, 32, train=True, augment=aug, seed=0)))
    holes = (x == 0).all(dim=1)  # [B,H,W]
    assert bool((x[~holes.unsqueeze(1).expand_as(x)] != 0).all())
    sizes = holes.sum(dim=(1, 2))
    assert int(sizes.max()) == 64 and int(sizes.min()) > 0  # clipped at borders sometimes
    for h in holes:  # each hole is an axis-aligned rectangle
        rows, cols = h.any(1).nonzero().flatten(), h.any(0).nonzero().flatten()
        assert int(h.sum()) == len(rows) * len(cols) and len(rows) <= 8 and len(cols) <= 8


def test_autoaugment_batched_matches_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=g)
    ops = "Invert Contrast Rotate TranslateX Sharpness ShearY TranslateY AutoContrast Equalize "
    ops += "Posterize Color Brightness Solarize ShearX"
    from torchvision.transforms import v2

    tv = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=128)
    for op in ops.split():
        mag = _aa_magnitude(op, 7, 16, 16)
        mag = -mag if op in _AA_SIGNED else mag
        batched = _aa_apply(x, op, mag)
        single = torch.stack([_aa_apply(xi[None], op, mag)[0] for xi in x])
        assert torch.equal(batched, single), op
        if hasattr(tv, "_apply_image_or_video_transform"):  # private torchvision API
            ref = tv._apply_image_or_video_transform(
                x, op, mag, interpolation=tv.interpolation, fill=tv._fill
            )
            assert torch.equal(batched, ref), op
    out1 = D.autoaugment_batch(x, torch.Generator().manual_seed(1))
    out2 = D.autoaugment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(out1, out2) and out1.dtype == torch.uint8
    big = x.repeat(20, 1, 1, 1)
    changed = (D.autoaugment_batch(big, torch.Generator().manual_seed(2)) != big).flatten(1).any(1)
    assert 0.3 < changed.float().mean().item() < 1.0
