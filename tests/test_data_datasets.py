"""Tests for qac.data.datasets: class lists and class-balanced subsets."""

from __future__ import annotations

import torch

from qac import data as D
from qac.data import (
    load_dataset,
)
from qac.data.datasets import _balanced_subset


def test_cifar100_class_list() -> None:
    assert len(D.CIFAR100_CLASSES) == 100
    assert list(D.CIFAR100_CLASSES) == sorted(D.CIFAR100_CLASSES)
    assert len(set(D.CIFAR100_CLASSES)) == 100


# --------------------------------------------------------------------------- limit


def test_balanced_subset_properties() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    idx = _balanced_subset(labels, 30)
    assert idx is not None and len(idx) == 30
    assert torch.equal(idx, torch.sort(idx).values)  # original order kept
    assert torch.bincount(labels[idx], minlength=3).tolist() == [13, 12, 5]
    small = _balanced_subset(labels, 9)
    assert small is not None and torch.bincount(labels[small]).tolist() == [3, 3, 3]
    assert set(small.tolist()) <= set(idx.tolist())  # nested
    assert _balanced_subset(labels, 85) is None and _balanced_subset(labels, None) is None


def test_limit_synthetic_is_class_balanced() -> None:
    full = load_dataset("synthetic", "train", train_size=400)
    sub = load_dataset("synthetic", "train", train_size=400, limit=50)
    assert len(sub) == 50
    assert torch.bincount(sub.labels, minlength=10).tolist() == [5] * 10
    idx = _balanced_subset(full.labels, 50)
    assert idx is not None and torch.equal(sub.images, full.images[idx])
