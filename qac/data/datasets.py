"""Dataset containers of :mod:`qac.data`, normalisation statistics, class-balanced subsets, seeds.

:class:`TensorImageDataset` holds uint8 images in memory; :class:`ImageFolderDataset` decodes
one image per access (ImageNet).  ``limit`` subsets (:func:`_balanced_subset`) are drawn with a
fixed generator (seed 0), independent of the training seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from qac.data.augment import AugmentConfig, _random_resized_crop_params
from qac.data.decode import _open_rgb

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "STATS",
    "ImageFolderDataset",
    "Stats",
    "TensorImageDataset",
]

_SUBSET_SEED = 0

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]
STATS: dict[str, Stats] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "synthetic": ((0.5, 0.5, 0.5), (0.2, 0.2, 0.2)),
}

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES: tuple[str, ...] = tuple(
    """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab
    crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
)


def _stats_for_classes(classes: Sequence[str]) -> Stats:
    if tuple(classes) == CIFAR10_CLASSES:
        return STATS["cifar10"]
    if tuple(classes) == CIFAR100_CLASSES:
        return STATS["cifar100"]
    return STATS["imagenet"]


# --------------------------------------------------------------------------- containers


@dataclass
class TensorImageDataset:
    """In-memory dataset: uint8 images ``[N,C,H,W]`` and int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str = ""

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                "images must be uint8 [N,C,H,W], got "
                f"{self.images.dtype} {tuple(self.images.shape)}"
            )
        self.labels = self.labels.to(torch.int64)
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels shape {tuple(self.labels.shape)} does not match "
                f"{self.images.shape[0]} images"
            )
        self.mean = tuple(float(m) for m in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(s) for s in self.std)  # type: ignore[assignment]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class ImageFolderDataset(torch.utils.data.Dataset):
    """Lazy ImageFolder dataset (ImageNet): decodes one image per access with PIL.

    ``ds[i]`` returns the *eval* view ``(uint8 [3,image_size,image_size], label)``;
    :meth:`load` gives the training view.  :class:`BatchLoader` handles batching, workers,
    normalisation and determinism.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        *,
        mean: Sequence[float] = STATS["imagenet"][0],
        std: Sequence[float] = STATS["imagenet"][1],
        image_size: int = 224,
        resize_size: int = 256,
        name: str = "imagenet",
    ) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.num_classes = len(self.classes)
        self.labels = torch.tensor([lbl for _, lbl in self.samples], dtype=torch.int64)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.image_size = image_size
        self.resize_size = resize_size
        self.name = name

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.load(index, train=False)

    def load(
        self,
        index: int,
        *,
        train: bool = False,
        generator: torch.Generator | None = None,
        augment: AugmentConfig | None = None,
    ) -> tuple[torch.Tensor, int]:
        """Decode sample ``index``; train: RandomResizedCrop+flip(+AutoAugment), else center crop.

        All randomness is drawn from ``generator`` (a fresh random one when None).
        """
        from torchvision.transforms import v2
        from torchvision.transforms.v2 import functional as TF

        path, label = self.samples[index]
        img = _open_rgb(path)
        s = self.image_size
        if train:
            cfg = augment if augment is not None else AugmentConfig()
            if generator is None:
                generator = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,))))
            i, j, h, w = _random_resized_crop_params(img.height, img.width, generator)
            img = TF.resized_crop(img, i, j, h, w, [s, s], antialias=True)
            flip = bool(torch.rand(1, generator=generator) < 0.5)
            if cfg.flip and flip:
                img = TF.horizontal_flip(img)
            if cfg.color_jitter is not None:
                cj_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(cj_seed)
                    img = v2.ColorJitter(*cfg.color_jitter)(img)
            if cfg.autoaugment:
                aa_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(aa_seed)
                    img = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)(img)
        else:
            img = TF.resize(img, [self.resize_size], antialias=True)
            img = TF.center_crop(img, [s, s])
        return TF.pil_to_tensor(img), label


# --------------------------------------------------------------------------- seeds and subsets


def _mix_seed(*parts: object) -> int:
    """Stable 63-bit seed from arbitrary parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _balanced_subset(labels: torch.Tensor, limit: int | None) -> torch.Tensor | None:
    """Indices (ascending) of the class-balanced first-``limit`` subset, or None for all."""
    n = int(labels.numel())
    if limit is None or limit >= n:
        return None
    if limit <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    g = torch.Generator().manual_seed(_SUBSET_SEED)
    rank = torch.empty(n, dtype=torch.int64)
    classes = torch.unique(labels)
    for c in classes.tolist():
        idx = (labels == c).nonzero().flatten()
        perm = torch.randperm(idx.numel(), generator=g)
        rank[idx[perm]] = torch.arange(idx.numel())
    key = rank * (int(labels.max()) + 1) + labels
    chosen = torch.argsort(key)[:limit]
    return torch.sort(chosen).values


def _apply_subset(
    images: torch.Tensor, labels: torch.Tensor, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    subset = _balanced_subset(labels, limit)
    if subset is None:
        return images, labels
    return images[subset], labels[subset]
