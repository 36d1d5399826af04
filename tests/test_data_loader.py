"""Tests for qac.data.loader: BatchLoader order, determinism and formats."""

from __future__ import annotations

import pytest
import torch

from qac.data import (
    AugmentConfig,
    BatchLoader,
    TensorImageDataset,
)


def tiny_dataset(n: int = 16, size: int = 8, classes: int = 4, seed: int = 0) -> TensorImageDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorImageDataset(
        images=torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
        labels=torch.arange(n) % classes,
        num_classes=classes,
        classes=[f"c{i}" for i in range(classes)],
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
    )


def normalise(images: torch.Tensor, ds: TensorImageDataset) -> torch.Tensor:
    mean = torch.tensor(ds.mean).view(1, 3, 1, 1)
    std = torch.tensor(ds.std).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


# --------------------------------------------------------------------------- BatchLoader


def test_eval_loader_no_shuffle_no_augment_and_normalised() -> None:
    ds = tiny_dataset(n=10)
    loader = BatchLoader(ds, 4, train=False, augment=AugmentConfig(cutout=4, autoaugment=True))
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape[0] for b in batches] == [4, 4, 2]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(y, ds.labels)
    torch.testing.assert_close(x, normalise(ds.images, ds))
    assert list(BatchLoader(ds, 4, train=False, drop_last=True)).__len__() == 2
    assert len(BatchLoader(ds, 4, train=False, drop_last=True)) == 2


def test_train_loader_deterministic_per_seed_and_epoch() -> None:
    ds = tiny_dataset(n=40, size=12)
    aug = AugmentConfig(crop_padding=3, flip=True, autoaugment=True, cutout=4)

    def epoch(seed: int, e: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = BatchLoader(ds, 16, train=True, augment=aug, seed=seed)
        loader.set_epoch(e)
        return list(loader)

    def same(a: list, b: list) -> bool:
        pairs = zip(a, b, strict=True)
        return all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in pairs)

    e0 = epoch(0, 0)
    assert same(e0, epoch(0, 0))
    assert not same(e0, epoch(0, 1))
    assert not same(e0, epoch(1, 0))
    # each epoch is a permutation of the whole dataset
    labels = torch.cat([y for _, y in e0])
    assert sorted(labels.tolist()) == sorted(ds.labels.tolist())
    # iterating advances the epoch; set_epoch rewinds
    loader = BatchLoader(ds, 16, train=True, augment=aug, seed=0)
    first, second = list(loader), list(loader)
    assert same(first, e0) and same(second, epoch(0, 1)) and loader.epoch == 2


def test_train_shuffle_without_augmentation() -> None:
    ds = tiny_dataset(n=30)
    x, y = next(iter(BatchLoader(ds, 30, train=True, augment=AugmentConfig.none(), seed=2)))
    assert not torch.equal(y, ds.labels)  # shuffled
    ref = normalise(ds.images, ds)
    # every output image is one dataset image, unchanged
    for xi in x:
        assert any(torch.equal(xi, r) for r in ref)


def test_channels_last_and_default_augment() -> None:
    ds = tiny_dataset(n=8, size=8)
    a = next(iter(BatchLoader(ds, 8, train=True, seed=0)))
    b = next(iter(BatchLoader(ds, 8, train=True, seed=0, augment=AugmentConfig(),
                              channels_last=True)))  # fmt: skip
    assert b[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # None = AugmentConfig() in train


def test_loader_argument_checks() -> None:
    with pytest.raises(ValueError):
        BatchLoader(tiny_dataset(), 0, train=False)
    with pytest.raises(TypeError):
        BatchLoader([1, 2, 3], 2, train=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        TensorImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2), 1, ["a"], (0, 0, 0), (1, 1, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_loader_on_cuda_matches_cpu() -> None:
    ds = tiny_dataset(n=32, size=16)
    aug = AugmentConfig(crop_padding=4, flip=True, cutout=6)
    cpu = list(BatchLoader(ds, 8, train=True, augment=aug, seed=3))
    gpu = list(BatchLoader(ds, 8, train=True, augment=aug, seed=3, device="cuda"))
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.is_cuda and yg.is_cuda
        torch.testing.assert_close(xg.cpu(), xc)
        assert torch.equal(yg.cpu(), yc)
    aa = AugmentConfig(autoaugment=True)  # runs on the GPU, deterministic there
    a = list(BatchLoader(ds, 8, train=True, augment=aa, seed=3, device="cuda"))
    b = list(BatchLoader(ds, 8, train=True, augment=aa, seed=3, device="cuda"))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b, strict=True))
