"""Synthetic sources of :mod:`qac.data`: deterministic, learnable images generated from a seed.

``synthetic`` (= ``synthetic-cifar10``), ``synthetic-cifar100``, ``synthetic-imagenet``: no
files, no cache.  Each class is a fixed random low-frequency colour pattern (4x4 grid, bilinearly
upsampled, pulled towards the classes' mean pattern by ``separation``); each image is its class
pattern shifted by up to ``max_shift`` px, with random gain/offset, a random low-frequency
distractor field of amplitude ``distractor`` and pixel noise ``noise``.  Options and defaults are
listed in :mod:`qac.data`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qac.data.datasets import _mix_seed

_SYNTH_PRESETS: dict[str, dict[str, int]] = {
    "cifar10": {"num_classes": 10, "image_size": 32},
    "cifar100": {"num_classes": 100, "image_size": 32},
    "imagenet": {"num_classes": 10, "image_size": 64},
}
_SYNTH_KEYS = frozenset(
    {
        "num_classes",
        "image_size",
        "train_size",
        "test_size",
        "noise",
        "max_shift",
        "distractor",
        "separation",
    }
)


def _make_synthetic(
    shape: str,
    split: str,
    seed: int,
    *,
    num_classes: int | None = None,
    image_size: int | None = None,
    train_size: int = 2000,
    test_size: int = 500,
    noise: float = 0.1,
    max_shift: int | None = None,
    distractor: float = 0.5,
    separation: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    preset = _SYNTH_PRESETS[shape]
    k = int(num_classes if num_classes is not None else preset["num_classes"])
    s = int(image_size if image_size is not None else preset["image_size"])
    shift = int(max_shift if max_shift is not None else max(1, s // 8))
    n = int(train_size if split == "train" else test_size)
    if k < 2 or s < 4 or n < 1 or shift < 0:
        raise ValueError(f"bad synthetic settings: classes={k} size={s} n={n} shift={shift}")
    p = s + 2 * shift

    gp = torch.Generator().manual_seed(_mix_seed("synthetic-prototypes", seed, k, s, shift))
    coarse = torch.rand(k, 3, 4, 4, generator=gp)
    protos = F.interpolate(coarse, size=(p, p), mode="bilinear", align_corners=True)
    # stretch each prototype to use the full range around 0.5 (low-frequency colour pattern)
    centred = protos - protos.mean(dim=(1, 2, 3), keepdim=True)
    protos = 0.5 + 0.25 * centred / centred.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
    common = protos.mean(dim=0, keepdim=True)
    protos = common + separation * (protos - common)

    gs = torch.Generator().manual_seed(_mix_seed("synthetic-samples", seed, split, k, s))
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=gs)]
    offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=gs)
    gain = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=gs)
    bias = 0.1 * (2 * torch.rand(n, 3, 1, 1, generator=gs) - 1)
    images = torch.empty((n, 3, s, s), dtype=torch.uint8)
    ar = torch.arange(s)
    chunk = 1024
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        rows = offsets[a:b, 0, None] + ar  # [m,s]
        cols = offsets[a:b, 1, None] + ar
        src = protos[labels[a:b]].permute(0, 2, 3, 1)  # [m,p,p,3]
        idx = torch.arange(b - a)[:, None, None]
        x = src[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)  # [m,3,s,s]
        distract = F.interpolate(
            torch.rand(b - a, 3, 3, 3, generator=gs) - 0.5,
            size=(s, s),
            mode="bilinear",
            align_corners=True,
        )
        x = (x - 0.5) * gain[a:b] + 0.5 + bias[a:b] + distractor * distract
        x = x + noise * torch.randn(x.shape, generator=gs)
        images[a:b] = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels, k
