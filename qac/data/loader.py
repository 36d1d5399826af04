"""The batch loader of :mod:`qac.data`: seeded order, augmentation and per-rank sharding.

:class:`BatchLoader` yields normalised float32 batches on the target device; order and
augmentation come from a generator seeded by ``(seed, epoch)`` (:mod:`qac.data.augment`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch

from qac.data.augment import AugmentConfig, _cutout, _random_crop, autoaugment_batch
from qac.data.datasets import ImageFolderDataset, TensorImageDataset, _mix_seed
from qac.data.errors import ImageDecodeError

__all__ = ["BatchLoader"]


class _EpochSampler:
    """Batch sampler: the current epoch's batches of (index, item_seed) pairs (set by BatchLoader,
    already cut to this process's shard)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class _LazyView(torch.utils.data.Dataset):
    """Maps (index, item_seed) to a decoded, cropped uint8 image (runs in DataLoader workers)."""

    def __init__(self, ds: ImageFolderDataset, train: bool, augment: AugmentConfig) -> None:
        self.ds, self.train, self.augment = ds, train, augment

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, item_seed = key
        if not self.train:
            return self.ds.load(index, train=False)
        g = torch.Generator().manual_seed(item_seed)
        return self.ds.load(index, train=True, generator=g, augment=self.augment)


class BatchLoader:
    """Batches of ``(float32 normalised images [B,C,H,W], int64 labels [B])`` on ``device``.

    In-memory datasets: with ``train=True`` the order is a permutation drawn from a generator
    seeded by ``(seed, epoch)`` and every batch is augmented per image (``augment=None`` means
    ``AugmentConfig()`` = random crop 4 + flip; use ``AugmentConfig.none()`` for none); with
    ``train=False`` the order is the dataset order and nothing is augmented.  Lazy
    :class:`ImageFolderDataset`: a torch ``DataLoader`` with ``num_workers`` workers (default
    ``min(4, cpu count)``) decodes and crops; per-item randomness is seeded from
    ``(seed, epoch)``, so results do not depend on the number of workers.

    Each ``iter()`` uses the current epoch and then advances it by one; :meth:`set_epoch` sets it
    explicitly, so ``set_epoch(e)`` followed by iteration always gives the same batches.

    Sharding (multi-process training): with ``world_size`` N, process ``rank`` yields its
    contiguous slice ``[b*rank//N, b*(rank+1)//N)`` of each global batch of ``b`` images. Order and
    augmentation are drawn for the global batch from the same ``(seed, epoch)`` generator on every
    process, so the slices of all ranks concatenate to the single-process batch.
    """

    def __init__(
        self,
        dataset: TensorImageDataset | ImageFolderDataset,
        batch_size: int,
        *,
        train: bool,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        channels_last: bool = False,
        drop_last: bool = False,
        num_workers: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if not isinstance(dataset, TensorImageDataset | ImageFolderDataset):
            raise TypeError(f"unsupported dataset type {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.train = train
        self.augment = (augment if augment is not None else AugmentConfig()) if train else None
        if self.augment and self.augment.color_jitter and isinstance(dataset, TensorImageDataset):
            raise ValueError(
                "augment.color_jitter is implemented for the lazy ImageNet loader only: remove it "
                f"for {getattr(dataset, 'name', 'this dataset')}"
            )
        self.seed = seed
        self.device = torch.device(device)
        self.channels_last = channels_last
        self.drop_last = drop_last
        self.num_workers = num_workers if num_workers is not None else min(4, os.cpu_count() or 1)
        self.rank, self.world_size = rank, world_size
        self._epoch = 0
        self._mean = torch.tensor(dataset.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(dataset.std, dtype=torch.float32).view(1, -1, 1, 1)
        self._dl: torch.utils.data.DataLoader | None = None
        self._sampler = _EpochSampler()

    @property
    def epoch(self) -> int:
        """Epoch the next iteration will use."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use ``epoch`` (order and augmentation depend on seed, epoch)."""
        self._epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self._epoch
        self._epoch += 1
        g = torch.Generator().manual_seed(_mix_seed("batchloader", self.seed, epoch))
        if isinstance(self.dataset, ImageFolderDataset):
            return self._iter_lazy(g)
        return self._iter_memory(g)

    def shard(self, size: int) -> slice:
        """This process's slice of a global batch of ``size`` images."""
        return slice(size * self.rank // self.world_size, size * (self.rank + 1) // self.world_size)

    def _global_batches(self, order: torch.Tensor) -> Iterator[torch.Tensor]:
        """Positions in ``order`` of each global batch (the last one smaller unless drop_last)."""
        n = len(order)
        end = (n // self.batch_size) * self.batch_size if self.drop_last else n
        for start in range(0, end, self.batch_size):
            yield order[start : start + self.batch_size]

    # -- internals
    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        if t.device == self.device:
            return t
        if self.device.type == "cuda" and t.device.type == "cpu":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def _finish(
        self, x: torch.Tensor, y: torch.Tensor, g: torch.Generator, size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This shard of a global batch of ``size`` (uint8) -> device, normalise, cutout, format."""
        dev = self.device
        x, y = self._to_device(x), self._to_device(y)
        if self._mean.device != dev:
            self._mean, self._std = self._mean.to(dev), self._std.to(dev)
        xf = (x.float() / 255.0 - self._mean) / self._std
        if self.train and self.augment is not None and self.augment.cutout > 0:
            _, _, h, w = xf.shape
            centres = torch.stack(
                [
                    torch.randint(0, h, (size,), generator=g),
                    torch.randint(0, w, (size,), generator=g),
                ],
                dim=1,
            )[self.shard(size)].to(dev)
            xf = _cutout(xf, self.augment.cutout, centres)
        if self.channels_last:
            xf = xf.contiguous(memory_format=torch.channels_last)
        return xf, y

    def _augment_uint8(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cfg = self.augment
        assert cfg is not None
        b, _, h, w = x.shape
        if cfg.crop_padding > 0:
            offsets = torch.randint(0, 2 * cfg.crop_padding + 1, (b, 2), generator=g)
            x = _random_crop(x, cfg.crop_padding, offsets.to(x.device))
        if cfg.flip:
            flip = (torch.rand(b, generator=g) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if cfg.autoaugment:
            x = autoaugment_batch(x, g)
        return x

    def _iter_memory(self, g: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ds = self.dataset
        assert isinstance(ds, TensorImageDataset)
        n = len(ds)
        order = torch.randperm(n, generator=g) if self.train else torch.arange(n)
        augment = self.train and self.augment is not None
        for idx in self._global_batches(order):
            part = self.shard(len(idx))
            if augment:  # the whole global batch, on the target device (exact on every device)
                x = self._augment_uint8(self._to_device(ds.images.index_select(0, idx)), g)[part]
            else:
                x = ds.images.index_select(0, idx[part])
            yield self._finish(x, ds.labels.index_select(0, idx[part]), g, len(idx))

    def _iter_lazy(self, g: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        ds = self.dataset
        assert isinstance(ds, ImageFolderDataset)
        n = len(ds)
        order = torch.randperm(n, generator=g) if self.train else torch.arange(n)
        if self.train:
            seeds = torch.randint(0, 2**62, (n,), generator=g)
        else:
            seeds = torch.zeros(n, dtype=torch.int64)
        pairs = list(zip(order.tolist(), seeds.tolist(), strict=True))
        positions = list(self._global_batches(torch.arange(n)))
        self._sampler.batches = [pairs[p[0] : p[-1] + 1][self.shard(len(p))] for p in positions]
        if self._dl is None:
            view = _LazyView(ds, self.train, self.augment or AugmentConfig.none())
            self._dl = torch.utils.data.DataLoader(
                view,
                batch_sampler=self._sampler,
                num_workers=self.num_workers,
                persistent_workers=self.num_workers > 0,
            )
        try:
            for (x, y), p in zip(self._dl, positions, strict=True):
                yield self._finish(x, y.to(torch.int64), g, len(p))
        except ImageDecodeError as exc:
            # a worker's error arrives as "Caught ... Original Traceback ...": keep its last line
            lines = str(exc).strip().splitlines()
            if len(lines) <= 1:
                raise
            raise ImageDecodeError(lines[-1].split(": ", 1)[-1]) from None
