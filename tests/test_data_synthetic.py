"""Tests for qac.data.synthetic: the synthetic sources."""

from __future__ import annotations

import time

import pytest
import torch

from qac.data import (
    BatchLoader,
    TensorImageDataset,
    load_dataset,
    num_classes_of,
)


@pytest.mark.parametrize(
    ("source", "shape", "classes"),
    [
        ("synthetic", (3, 32, 32), 10),
        ("synthetic-cifar10", (3, 32, 32), 10),
        ("synthetic-cifar100", (3, 32, 32), 100),
        ("synthetic-imagenet", (3, 64, 64), 10),
    ],
)
def test_synthetic_shapes(source: str, shape: tuple[int, int, int], classes: int) -> None:
    tr = load_dataset(source, "train", train_size=300, test_size=120)
    te = load_dataset(source, "val", train_size=300, test_size=120)
    assert isinstance(tr, TensorImageDataset)
    assert tr.images.shape == (300, *shape) and te.images.shape == (120, *shape)
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert tr.num_classes == classes == len(tr.classes)
    assert int(tr.labels.min()) >= 0 and int(tr.labels.max()) < classes
    counts = torch.bincount(tr.labels, minlength=classes)
    assert int(counts.max()) - int(counts.min()) <= 1  # balanced
    assert tr.mean == (0.5, 0.5, 0.5) and tr.std == (0.2, 0.2, 0.2)
    # pixels use the range and are roughly standardised by the declared stats
    x = tr.images.float() / 255
    assert abs(float(x.mean()) - 0.5) < 0.1 and 0.12 < float(x.std()) < 0.3


def test_synthetic_determinism() -> None:
    a = load_dataset("synthetic", "train", seed=3, train_size=200)
    b = load_dataset("synthetic", "train", seed=3, train_size=200)
    c = load_dataset("synthetic", "train", seed=4, train_size=200)
    t = load_dataset("synthetic", "test", seed=3, train_size=200, test_size=200)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.images, t.images)  # test split drawn with another seed


def test_synthetic_options() -> None:
    ds = load_dataset(
        "synthetic-imagenet", "train", num_classes=4, image_size=40, train_size=50, noise=0.0
    )
    assert ds.images.shape == (50, 3, 40, 40) and ds.num_classes == 4
    assert ds.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert num_classes_of("synthetic", num_classes=4) == 4


def test_synthetic_learnable() -> None:
    """Nearest-class-mean + logistic regression on a few hundred samples beats chance clearly."""
    t0 = time.perf_counter()
    tr = load_dataset("synthetic", "train", train_size=500, test_size=300, seed=1)
    te = load_dataset("synthetic", "test", train_size=500, test_size=300, seed=1)
    (xtr, ytr) = next(iter(BatchLoader(tr, len(tr), train=False)))
    (xte, yte) = next(iter(BatchLoader(te, len(te), train=False)))
    torch.manual_seed(0)
    lin = torch.nn.Linear(xtr[0].numel(), tr.num_classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xtr.flatten(1)), ytr).backward()
        opt.step()
    with torch.no_grad():
        acc = (lin(xte.flatten(1)).argmax(1) == yte).float().mean().item()
    assert acc > 0.5, f"logistic regression accuracy {acc:.3f} (chance 0.1)"
    assert time.perf_counter() - t0 < 30
