"""Dataset sources for qac-bench: one interface, images held as uint8 tensors.

Sources (the ``source`` string of :func:`load_dataset`)
-------------------------------------------------------
``cifar10`` / ``cifar100``
    torchvision's python-pickle copies under ``root`` (``root/cifar-10-batches-py/``,
    ``root/cifar-100-python/``).  Downloading happens only with ``download=True``; it goes to a
    temporary folder under ``root`` that is renamed into place when complete and removed on any
    failure.  Missing/corrupt data raises :class:`DatasetNotFoundError`.
``imagenet`` or ``imagenet:<path>``
    ImageFolder layout ``<root or path>/train/<wnid>/*.JPEG`` and ``.../val/<wnid>/*.JPEG``.
    Returns a *lazy* :class:`ImageFolderDataset` (PIL decode per item); :class:`BatchLoader` then
    wraps a torch ``DataLoader`` with workers.  Train: RandomResizedCrop(224) + flip; eval:
    Resize(256) + CenterCrop(224).
``folder:<path>``
    Any ImageFolder tree ``<path>/train/<class>/*`` and ``<path>/test/<class>/*`` (``val`` is
    accepted instead of ``test``), optionally below one single top-level folder.  Label order =
    class folder names sorted.  Both splits must hold the same class folders and no class folder
    may be empty (a one-line :class:`DatasetError` names the folders otherwise).  All images of a
    split must have the same size; they are decoded once into a uint8 ``[N,3,H,W]`` tensor cached
    as ``.pt``.  An undecodable file (truncated, empty, not an image) raises
    :class:`ImageDecodeError` naming it, or is left out with a warning with the option
    ``skip_bad_images=True`` (a split with left-out files is not cached).
``tar:<path>``
    A ``.tar``/``.tar.gz``/``.tgz`` holding such a tree.  Extracted once (atomically) into the
    cache, then read like ``folder:``.  ``tar:/work/shared/data/cifar10-jpeg.tar.gz`` is the
    offline CIFAR-10 copy.
``synthetic`` (= ``synthetic-cifar10``), ``synthetic-cifar100``, ``synthetic-imagenet``
    Deterministic, learnable data generated from ``seed`` (no files, no cache).  Defaults:
    3x32x32 with 10 / 100 classes, and 3x64x64 with **10** classes for the ImageNet-shaped stand-in
    (1000 classes would be unlearnable in a smoke run).  Keyword options (defaults):
    ``num_classes``, ``image_size``, ``train_size`` (2,000), ``test_size`` (500), ``noise`` (0.1,
    pixel std in [0,1] units), ``max_shift`` (image_size // 8 px), ``distractor`` (0.5),
    ``separation`` (0.5).  Each class is a fixed random low-frequency colour pattern (4x4 grid,
    bilinearly upsampled, pulled towards the classes' mean pattern by ``separation``); each image
    is its class pattern shifted by up to ``max_shift`` px, with random gain/offset, a random
    low-frequency distractor field of amplitude ``distractor`` and pixel noise ``noise``.  Train
    and test share the patterns (they depend on ``seed``) and draw images with different seeds.
    Generation takes ~0.2 s (CIFAR-shaped) / ~1 s (64x64) for 2,000 images.  At the defaults a
    tiny 2-conv CNN reaches ~75 % after one epoch (10 classes), logistic regression ~99 %.

Options: :func:`check_options` says which source-specific options (``load_dataset``'s keyword
options, a config's ``data_options``) a source takes; :func:`load_dataset` checks them before any
work.  :func:`num_classes_of` gives a source's class count without decoding images.  Every error
for bad input is a one-line :class:`DatasetError` (a ``ValueError``).

Subsets: ``limit=N`` keeps a *class-balanced* subset: every class's samples are permuted with a
fixed generator (seed 0, independent of ``seed``), classes are interleaved round-robin (rank 0 of
every class, then rank 1, ...) and the first N are kept, returned in their original order.  So
subsets are nested (limit=100 is a subset of limit=200) and identical across training seeds.  For
``folder:``/``tar:`` without a full decoded cache, only the selected files are decoded.

Normalisation statistics (``mean``/``std`` attributes, applied by :class:`BatchLoader`):
CIFAR-10 (0.4914, 0.4822, 0.4465)/(0.2470, 0.2435, 0.2616); CIFAR-100 (0.5071, 0.4865, 0.4409)/
(0.2673, 0.2564, 0.2762); ImageNet (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225); synthetic: fixed
0.5/0.2 (about the generator's pixel statistics at default settings).  ``folder:``/``tar:``
trees whose class names are exactly CIFAR-10's (or CIFAR-100's) get those statistics, any other
tree gets ImageNet's.  Pass ``mean=``/``std=`` to :func:`load_dataset` to override.

Cache (``cache_dir`` argument, else ``$QAC_CACHE_DIR``, else ``<root>/.cache``)::

    <cache>/extracted/<archive-stem>-<key>/   complete extraction of an archive; contains a
                                              ``.qac-complete`` marker.  key = sha256 of
                                              (resolved path, size, mtime_ns)[:16]
    <cache>/extracted/.tmp-*                  in-progress extraction (never trusted; renamed into
                                              place when complete, removed on error)
    <cache>/tensors/tar-<stem>-<split>-<key>.pt      decoded split of an archive (same key)
    <cache>/tensors/folder-<name>-<split>-<key>.pt   decoded split of a folder; key = sha256 of the
                                                     file list (relative path, size, mtime_ns)

``.pt`` files hold ``{"version", "images" uint8 [N,3,H,W], "labels" int64 [N], "classes"}``, are
written to a temp file and ``os.replace``d, and are loaded memory-mapped (copy-on-write, so
in-place edits of ``images`` never reach the file).  Unreadable cache files are rebuilt.  Images are
decoded with ``torchvision.io.decode_image`` (pixel-identical to PIL on the CIFAR-10 JPEGs, ~2.5x
faster), falling back to PIL.

Augmentation (:class:`AugmentConfig`, QCFS recipe) happens on the batch: random crop with zero
padding, horizontal flip (both per image), optional AutoAugment (torchvision's CIFAR-10 policy
table and magnitudes, an independent draw per image, fill 128 as in the ``CIFAR10Policy``
implementation used by QCFS), normalisation, then optional Cutout (one square hole zeroed *after*
normalisation, as in QCFS/DeVries).  ImageNet (lazy) uses RandomResizedCrop(224) + flip (+
AutoAugment ImageNet policy) per item in the workers; Cutout is applied on the batch.  All
randomness comes from a ``torch.Generator`` seeded from ``(seed, epoch)``, so identical seeds give
identical batches, with any number of workers; crop/flip/cutout draws are also identical across
devices (AutoAugment's float ops may round differently on GPU than on CPU).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import shutil
import tarfile
import tempfile
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from qac.io import atomic_path

__all__ = [
    "AugmentConfig",
    "BatchLoader",
    "autoaugment_batch",
    "DatasetError",
    "DatasetNotFoundError",
    "DatasetOptionError",
    "ImageDecodeError",
    "ImageFolderDataset",
    "TensorImageDataset",
    "load_dataset",
    "check_options",
    "check_source",
    "num_classes_of",
    "default_cache_dir",
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "STATS",
]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_COMPLETE_MARKER = ".qac-complete"
_SUBSET_SEED = 0
_IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)

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


class DatasetError(ValueError):
    """A dataset source, its options or its files are unusable (one-line message says the fix).

    Base class of every error this module raises for bad user input, so callers (the workflow's
    pre-run check, the CLI) can catch them all with one ``except DatasetError``.
    """


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset's files are missing, incomplete or unreadable (message says what to do)."""


class DatasetOptionError(DatasetError, TypeError):
    """A keyword option the dataset source does not take (a ``TypeError`` like Python's own)."""


class ImageDecodeError(DatasetError):
    """An image file that cannot be read or decoded; ``path`` names it."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


# --------------------------------------------------------------------------- containers


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


def _mix_seed(*parts: object) -> int:
    """Stable 63-bit seed from arbitrary parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def default_cache_dir(root: str | Path = "data") -> Path:
    """Cache directory used when ``cache_dir`` is None: ``$QAC_CACHE_DIR`` or ``<root>/.cache``."""
    env = os.environ.get("QAC_CACHE_DIR")
    return Path(env).expanduser() if env else Path(root).expanduser() / ".cache"


def _normalise_split(split: str) -> str:
    s = split.lower()
    if s == "train":
        return "train"
    if s in ("test", "val"):
        return "test"
    raise DatasetError(f"split must be 'train' or 'test' ('val' = 'test'), got {split!r}")


def _parse_source(source: str) -> tuple[str, str | None]:
    """Return (kind, argument) for a source string."""
    if not isinstance(source, str):
        raise DatasetError(f"dataset source must be a string, got {source!r}")
    s = source.strip()
    for prefix in ("folder", "tar", "imagenet"):
        if s.startswith(prefix + ":"):
            arg = s[len(prefix) + 1 :].strip()
            if not arg:
                raise DatasetError(f"source {source!r} needs a path after '{prefix}:'")
            return prefix, arg
    low = s.lower().replace("_", "-")
    if low in ("cifar10", "cifar-10"):
        return "cifar10", None
    if low in ("cifar100", "cifar-100"):
        return "cifar100", None
    if low == "imagenet":
        return "imagenet", None
    if low in ("synthetic", "synthetic-cifar10"):
        return "synthetic", "cifar10"
    if low == "synthetic-cifar100":
        return "synthetic", "cifar100"
    if low == "synthetic-imagenet":
        return "synthetic", "imagenet"
    raise DatasetError(
        f"unknown dataset source {source!r}; expected cifar10, cifar100, imagenet[:<path>], "
        "folder:<path>, tar:<path>, synthetic, synthetic-cifar10, synthetic-cifar100 or "
        "synthetic-imagenet"
    )


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


def _atomic_torch_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _read_tensor_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """Load a decoded-split cache file, or None when absent/invalid (invalid files are removed)."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        images, labels, classes = obj["images"], obj["labels"], list(obj["classes"])
        ok = (
            obj.get("version") == CACHE_VERSION
            and images.dtype == torch.uint8
            and images.dim() == 4
            and labels.shape == (images.shape[0],)
        )
        if not ok:
            raise ValueError("unexpected content")
    except Exception as exc:  # corrupt, truncated or from another version: rebuild
        log.warning("ignoring unreadable cache file %s (%s); rebuilding", path, exc)
        path.unlink(missing_ok=True)
        return None
    return images, labels.to(torch.int64), classes


_SKIP_HINT = "remove the file, or pass skip_bad_images=True (data_options) to skip such files"


def _pil_decode(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _decode_failure(
    path: str | Path, data: bytes | None, exc: BaseException, hint: str = _SKIP_HINT
) -> ImageDecodeError:
    """One-line :class:`ImageDecodeError` naming ``path`` and why it could not be decoded."""
    if data is not None and not data:
        reason = "empty file, 0 bytes"
    elif isinstance(exc, Image.UnidentifiedImageError):
        reason = "not an image in a known format"
    else:
        text = " ".join(str(exc).split())
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    verb = "read" if data is None else "decode"
    return ImageDecodeError(f"cannot {verb} image {path} ({reason}): {hint}", str(path))


def _open_rgb(path: str | Path) -> Image.Image:
    """PIL RGB image of ``path``; :class:`ImageDecodeError` naming it when unreadable."""
    data: bytes | None = None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise _decode_failure(path, data, exc, "remove or replace the file") from exc


def _decode_one(path: str | Path) -> torch.Tensor:
    """Decode one image file to uint8 RGB ``[3,H,W]``.

    Uses ``torchvision.io.decode_image`` (libjpeg-turbo/libpng; ~2.5x faster than PIL here and
    pixel-identical to PIL on the CIFAR-10 JPEGs) when available, PIL otherwise or on failure.
    Raises :class:`ImageDecodeError` naming ``path`` when neither can read it (truncated or empty
    file, unknown format, unreadable file).
    """
    data: bytes | None = None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            from torchvision.io import ImageReadMode, decode_image
        except ImportError:  # torchvision.io decoders are deprecated since 0.29
            return _pil_decode(data)
        try:
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return decode_image(buf, mode=ImageReadMode.RGB)
        except (RuntimeError, ValueError):
            return _pil_decode(data)
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise _decode_failure(path, data, exc) from exc


def _decode_files(paths: Sequence[str | Path], skipped: list[int] | None = None) -> torch.Tensor:
    """Decode equally sized image files into one uint8 ``[N,3,H,W]`` tensor.

    An undecodable file raises :class:`ImageDecodeError` naming it; when ``skipped`` is a list,
    such files are left out instead and their indices (into ``paths``) appended to it.
    """
    if not paths:
        raise DatasetError("no image files to decode")
    out: torch.Tensor | None = None
    first = ""
    n = 0
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*decoding and encoding capabilities of TorchVision are deprecated"
        )
        for i, path in enumerate(paths):
            try:
                img = _decode_one(path)
            except ImageDecodeError:
                if skipped is None:
                    raise
                skipped.append(i)
                continue
            if out is None:
                out, first = torch.empty((len(paths), *img.shape), dtype=torch.uint8), str(path)
            elif img.shape != out.shape[1:]:
                raise DatasetError(
                    f"image {path} has shape {tuple(img.shape)} but {first} has "
                    f"{tuple(out.shape[1:])}; in-memory sources need equally sized images"
                )
            out[n] = img
            n += 1
    if out is None:
        raise DatasetError(
            f"none of the {len(paths)} image files could be decoded (first: {paths[0]})"
        )
    return out if n == len(paths) else out[:n].clone()


# --------------------------------------------------------------------------- folder trees


def _visible_dirs(path: Path) -> list[str]:
    return sorted(
        e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith((".", "_"))
    )


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in _IMAGE_EXTENSIONS


def _image_files(folder: Path) -> list[str]:
    """Sorted names of the image files directly in ``folder``."""
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and _is_image_name(e.name))


def _has_image(folder: Path) -> bool:
    """Whether ``folder`` holds at least one image file (stops at the first one)."""
    with os.scandir(folder) as it:
        return any(e.is_file() and _is_image_name(e.name) for e in it)


def _find_tree_root(path: Path) -> Path:
    """Directory holding ``train/`` and/or ``test/``/``val/``: ``path`` or its single child."""

    def has_split(p: Path) -> bool:
        return any((p / s).is_dir() for s in ("train", "test", "val"))

    if has_split(path):
        return path
    if path.is_dir():
        children = _visible_dirs(path)
        if len(children) == 1 and has_split(path / children[0]):
            return path / children[0]
    if path.is_file():
        raise DatasetNotFoundError(
            f"{path} is a file, not a folder: use source 'tar:{path}' for a .tar/.tar.gz archive"
        )
    raise DatasetNotFoundError(
        f"no ImageFolder tree under {path}: expected {path}/train/<class>/<image> and "
        f"{path}/test/<class>/<image> ('val' accepted for 'test'), possibly under one "
        "top-level folder"
    )


def _split_dirs(tree: Path, eval_names: tuple[str, ...] = ("test", "val")) -> dict[str, Path]:
    """The split folders of ``tree``: ``train`` and ``test`` (the first of ``eval_names``)."""
    dirs = {"train": tree / "train"} if (tree / "train").is_dir() else {}
    for name in eval_names:
        if (tree / name).is_dir():
            dirs["test"] = tree / name
            break
    return dirs


def _tree_classes(tree: Path, eval_names: tuple[str, ...] = ("test", "val")) -> list[str]:
    """Sorted class names of ``tree``, checked without decoding anything.

    Every split folder must hold class folders, every class folder at least one image, and the
    train and test splits the same class folders; otherwise :class:`DatasetError` names the
    offending folder(s).
    """
    dirs = _split_dirs(tree, eval_names)
    if not dirs:
        raise DatasetNotFoundError(
            f"no split folder under {tree}: expected {tree}/train/<class>/<image> and "
            f"{tree}/{eval_names[0]}/<class>/<image>"
        )
    per_split: dict[str, list[str]] = {}
    for split, folder in dirs.items():
        names = _visible_dirs(folder)
        if not names:
            raise DatasetError(f"no class folders in {folder}: expected {folder}/<class>/<image>")
        for name in names:
            if not _has_image(folder / name):
                raise DatasetError(
                    f"class folder {folder / name} holds no image files "
                    f"({', '.join(sorted(_IMAGE_EXTENSIONS))}): add images or remove the folder"
                )
        per_split[split] = names
    if len(per_split) == 2 and per_split["train"] != per_split["test"]:
        train, test = set(per_split["train"]), set(per_split["test"])
        raise DatasetError(
            f"the class folders of {dirs['train']} and {dirs['test']} differ (only in train: "
            f"{sorted(train - test)}, only in {dirs['test'].name}: {sorted(test - train)}): "
            "give both splits the same class folders"
        )
    return next(iter(per_split.values()))


def _scan_split(
    tree: Path, split: str, eval_names: tuple[str, ...] = ("test", "val")
) -> tuple[list[str], list[tuple[str, int]]]:
    """Classes (checked by :func:`_tree_classes`) and (path, label) samples of one split."""
    split_path = _split_dirs(tree, eval_names).get(split)
    if split_path is None:
        names = ("train",) if split == "train" else eval_names
        raise DatasetNotFoundError(
            f"split '{split}' missing under {tree}: expected "
            f"{tree}/{'/ or '.join(names)}/<class>/<image>"
        )
    classes = _tree_classes(tree, eval_names)
    samples = [
        (str(split_path / c / f), label)
        for label, c in enumerate(classes)
        for f in _image_files(split_path / c)
    ]
    return classes, samples


def _check_labels(labels: torch.Tensor, classes: Sequence[str], what: str) -> None:
    """Raise when a class has no sample in a (cached) split: its class folder was empty."""
    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    empty = [c for c, n in zip(classes, counts, strict=False) if n == 0]
    if empty or len(counts) != len(classes):
        raise DatasetError(
            f"{what} has no images of class(es) {empty}: every class folder of train/ and test/ "
            "needs images"
        )


def _stats_for_classes(classes: Sequence[str]) -> Stats:
    if tuple(classes) == CIFAR10_CLASSES:
        return STATS["cifar10"]
    if tuple(classes) == CIFAR100_CLASSES:
        return STATS["cifar100"]
    return STATS["imagenet"]


def _decode_split(
    samples: list[tuple[str, int]],
    classes: list[str],
    cache_file: Path,
    limit: int | None,
    skip_bad_images: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode a split (or only its ``limit`` subset); full decodes are cached in ``cache_file``.

    Undecodable files raise :class:`ImageDecodeError`, or with ``skip_bad_images`` are left out
    (with a warning); a split with skipped files is never cached.
    """
    labels = torch.tensor([lbl for _, lbl in samples], dtype=torch.int64)
    subset = _balanced_subset(labels, limit)
    if subset is not None:
        samples = [samples[i] for i in subset.tolist()]
        labels = labels[subset]
    skipped: list[int] | None = [] if skip_bad_images else None
    t0 = time.perf_counter()
    images = _decode_files([p for p, _ in samples], skipped)
    log.info("decoded %d images in %.1fs", len(images), time.perf_counter() - t0)
    if skipped:
        log.warning(
            "skipped %d undecodable image(s) of %d (first: %s); the decoded split is not cached",
            len(skipped),
            len(samples),
            samples[skipped[0]][0],
        )
        keep = torch.ones(len(samples), dtype=torch.bool)
        keep[skipped] = False
        return images, labels[keep], classes
    if subset is None:
        _atomic_torch_save(
            {"version": CACHE_VERSION, "images": images, "labels": labels, "classes": classes},
            cache_file,
        )
    return images, labels, classes


def _apply_subset(
    images: torch.Tensor, labels: torch.Tensor, limit: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    subset = _balanced_subset(labels, limit)
    if subset is None:
        return images, labels
    return images[subset], labels[subset]


def _load_folder(
    path: Path, split: str, cache_dir: Path, limit: int | None, skip_bad_images: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    tree = _find_tree_root(path.expanduser())
    classes, samples = _scan_split(tree, split)
    h = hashlib.sha256(f"{CACHE_VERSION}|{tree.resolve()}|{split}|{classes}".encode())
    for p, _ in samples:
        st = os.stat(p)
        h.update(f"|{os.path.relpath(p, tree)}:{st.st_size}:{st.st_mtime_ns}".encode())
    cache_file = cache_dir / "tensors" / f"folder-{tree.name}-{split}-{h.hexdigest()[:16]}.pt"
    cached = _read_tensor_cache(cache_file)
    if cached is not None:
        images, labels, classes = cached
        return (*_apply_subset(images, labels, limit), classes)
    return _decode_split(samples, classes, cache_file, limit, skip_bad_images)


# --------------------------------------------------------------------------- archives


def _archive_key(archive: Path) -> str:
    st = archive.stat()
    ident = f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _archive_stem(archive: Path) -> str:
    name = archive.name
    for ext in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return archive.stem


def _extract_tar(archive: Path, dest: Path) -> None:
    """Extract regular files and directories of ``archive`` into ``dest`` (links etc. skipped).

    Member names that are absolute or contain ``..`` are rejected, and no links are created, so
    nothing can be written outside ``dest``.
    """
    with tarfile.open(archive, "r:*") as tf:
        for m in tf:
            parts = Path(m.name).parts
            if m.name.startswith(("/", "\\")) or ".." in parts:
                raise tarfile.TarError(f"unsafe member name {m.name!r}")
            target = dest.joinpath(*parts) if parts else dest
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            else:
                log.warning("skipping non-regular member %s in %s", m.name, archive)


def _cached_extraction(archive: Path, cache_dir: Path) -> Path:
    """Extract ``archive`` once into ``cache_dir/extracted`` (atomically) and return the folder."""
    key = _archive_key(archive)
    base = cache_dir / "extracted"
    final = base / f"{_archive_stem(archive)}-{key}"
    if (final / _COMPLETE_MARKER).is_file():
        return final
    if final.exists():  # not produced by us (rename is atomic): never trust it
        log.warning("removing incomplete extraction %s", final)
        shutil.rmtree(final, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(base)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=base))
    t0 = time.perf_counter()
    try:
        _extract_tar(archive, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        (tmp / _COMPLETE_MARKER).write_text(
            json.dumps({"archive": str(archive.resolve()), "key": key, "version": CACHE_VERSION})
        )
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _COMPLETE_MARKER).is_file():  # not a concurrent winner: real error
                raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetNotFoundError(
            f"cannot extract archive {archive}: {exc.__class__.__name__}: {exc} "
            "(is it a complete .tar/.tar.gz file?)"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %s in %.1fs", archive, time.perf_counter() - t0)
    return final


def _remove_stale_tmp(base: Path, max_age_s: float = 24 * 3600) -> None:
    """Best-effort removal of temp extraction folders left by crashed runs (older than a day)."""
    now = time.time()
    for e in os.scandir(base):
        if e.name.startswith(".tmp-") and e.is_dir():
            try:
                if now - e.stat().st_mtime > max_age_s:
                    shutil.rmtree(e.path, ignore_errors=True)
            except OSError:
                pass


def _require_archive(archive: Path) -> Path:
    """``archive`` (user-expanded) if it is a file, else :class:`DatasetNotFoundError`."""
    archive = archive.expanduser()
    if archive.is_dir():
        raise DatasetNotFoundError(
            f"{archive} is a folder, not an archive: use source 'folder:{archive}'"
        )
    if not archive.is_file():
        raise DatasetNotFoundError(
            f"archive {archive} not found: pass source 'tar:<path>' pointing to a .tar/.tar.gz "
            "holding <top>/train/<class>/<image> and <top>/test/<class>/<image>"
        )
    return archive


def _load_tar(
    archive: Path, split: str, cache_dir: Path, limit: int | None, skip_bad_images: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    archive = _require_archive(archive)
    key = _archive_key(archive)
    cache_file = cache_dir / "tensors" / f"tar-{_archive_stem(archive)}-{split}-{key}.pt"
    cached = _read_tensor_cache(cache_file)
    if cached is not None:
        images, labels, classes = cached
        _check_labels(labels, classes, f"the {split} split of {archive} (cache {cache_file})")
        return (*_apply_subset(images, labels, limit), classes)
    tree = _find_tree_root(_cached_extraction(archive, cache_dir))
    classes, samples = _scan_split(tree, split)
    return _decode_split(samples, classes, cache_file, limit, skip_bad_images)


# --------------------------------------------------------------------------- torchvision CIFAR


def _load_torchvision_cifar(
    kind: str, split: str, root: Path, download: bool
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if kind == "cifar10" else CIFAR100
    pretty = "CIFAR-10" if kind == "cifar10" else "CIFAR-100"
    folder = cls.base_folder
    root = root.expanduser().resolve()
    hint = (
        f"{pretty} not found under {root}: put the python version '{folder}/' there, or pass "
        "download=True on a machine with internet"
    )
    if kind == "cifar10":
        hint += ", or use source 'tar:/path/cifar10-jpeg.tar.gz'"
    if download and not (root / folder).is_dir():
        _download_cifar(cls, root, folder, hint)
    try:
        ds = cls(str(root), train=split == "train", download=False)
    except (RuntimeError, OSError, KeyError, EOFError, ValueError) as exc:
        raise DatasetNotFoundError(f"{hint} ({exc.__class__.__name__}: {exc})") from exc
    images = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return images, labels, list(ds.classes)


def _download_cifar(cls: type, root: Path, folder: str, hint: str) -> None:
    """Download into a temp folder under ``root``; move the result in only when complete."""
    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-download-", dir=root))
    ok = False
    try:
        cls(str(tmp), train=True, download=True)
        try:
            os.rename(tmp / folder, root / folder)
        except OSError:
            if not (root / folder).is_dir():
                raise
        ok = True
    except Exception as exc:  # URLError, RuntimeError (checksum), OSError, ...
        raise DatasetNotFoundError(
            f"{hint} (download failed: {exc.__class__.__name__}: {exc})"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok and created_root:
            try:
                root.rmdir()
            except OSError:
                pass


# --------------------------------------------------------------------------- synthetic


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


# --------------------------------------------------------------------------- public API


_COMMON_OPTIONS = frozenset({"mean", "std"})
_SOURCE_OPTIONS: dict[str, frozenset[str]] = {
    "synthetic": _SYNTH_KEYS,
    "folder": frozenset({"skip_bad_images"}),
    "tar": frozenset({"skip_bad_images"}),
    "cifar10": frozenset({"download"}),
    "cifar100": frozenset({"download"}),
}
_INT_OPTIONS = {"num_classes": 2, "image_size": 4, "train_size": 1, "test_size": 1, "max_shift": 0}
_NONE_OK = frozenset({"num_classes", "image_size", "max_shift"})
_FLOAT_OPTIONS = frozenset({"noise", "distractor", "separation"})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _option_problem(name: str, value: object) -> str | None:
    """What is wrong with option ``name=value`` (None when it is fine)."""
    if name in ("mean", "std"):
        ok = (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) == 3
            and all(_is_number(v) and (name == "mean" or v > 0) for v in value)
        )
        kind = "numbers" if name == "mean" else "positive numbers"
        return None if ok else f"must be 3 {kind} (one per RGB channel)"
    if name in ("skip_bad_images", "download"):
        return None if isinstance(value, bool) else "must be true or false"
    if name in _INT_OPTIONS:
        if value is None and name in _NONE_OK:
            return None
        low = _INT_OPTIONS[name]
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return None if ok else f"must be an integer >= {low}"
    if name in _FLOAT_OPTIONS:
        return None if _is_number(value) and value >= 0 else "must be a number >= 0"  # type: ignore[operator]
    return None


def check_options(
    source: str, options: Mapping[str, object], *, where: str = "data_options"
) -> None:
    """Raise a one-line :class:`DatasetError` unless ``source`` takes every option in ``options``.

    ``options`` are the source-specific keywords of :func:`load_dataset` (a config's
    ``data_options.<dataset>``): ``mean``/``std`` for every source, plus the synthetic generator
    settings for ``synthetic*``, ``skip_bad_images`` for ``folder:``/``tar:`` and ``download``
    for ``cifar10``/``cifar100``.  Values are checked too.  Unknown options raise
    :class:`DatasetOptionError` (also a ``TypeError``).  ``where`` names the place to fix in the
    message (e.g. ``"data_options.cifar10"``).  Cheap: touches no file.
    """
    kind, _ = _parse_source(source)
    if not isinstance(options, Mapping):
        raise DatasetError(f"{where} must be a mapping of option names to values, got {options!r}")
    allowed = _COMMON_OPTIONS | _SOURCE_OPTIONS.get(kind, frozenset())
    bad = sorted(str(k) for k in options if k not in allowed)
    if bad:
        raise DatasetOptionError(
            f"source {source!r} does not take option(s) {bad} (it takes: {sorted(allowed)}); "
            f"remove them from {where}"
        )
    for name, value in options.items():
        problem = _option_problem(name, value)
        if problem is not None:
            raise DatasetError(
                f"option {name}={value!r} of source {source!r} {problem}; fix it in {where}"
            )


def load_dataset(
    source: str,
    split: str,
    *,
    root: str | Path = "data",
    cache_dir: str | Path | None = None,
    limit: int | None = None,
    download: bool = False,
    seed: int = 0,
    **options: object,
) -> TensorImageDataset | ImageFolderDataset:
    """Load one split of a dataset source (see the module docstring for sources and caching).

    Args:
        source: ``cifar10``, ``cifar100``, ``imagenet[:<path>]``, ``folder:<path>``,
            ``tar:<path>``, ``synthetic[-cifar10|-cifar100|-imagenet]``.
        split: ``"train"`` or ``"test"`` (``"val"`` is an alias of ``"test"``).
        root: data directory for cifar10/cifar100/imagenet; default cache location.
        cache_dir: cache directory (default ``$QAC_CACHE_DIR`` or ``<root>/.cache``).
        limit: keep a class-balanced subset of this many samples (see module docstring).
        download: allow torchvision to download CIFAR (never attempted otherwise).
        seed: seed of the synthetic data (ignored by the other sources).
        **options: source-specific options, checked by :func:`check_options` before any work:
            ``mean``/``std`` (3-tuples) override the normalisation statistics of any source;
            ``num_classes``, ``image_size``, ``train_size``, ``test_size``, ``noise``,
            ``max_shift``, ``distractor``, ``separation`` for synthetic sources;
            ``skip_bad_images`` (default False) for ``folder:``/``tar:``: leave out undecodable
            image files with a warning instead of raising (such a split is never cached).

    Returns:
        A :class:`TensorImageDataset` (uint8 images in memory), or a lazy
        :class:`ImageFolderDataset` for ``imagenet``.

    Raises:
        DatasetNotFoundError: files missing, incomplete or unreadable (message says what to do).
        ImageDecodeError: an image file cannot be decoded (the message names it).
        DatasetOptionError: an option the source does not take.
        DatasetError: unknown source/split, bad option values, bad limit, empty class folders,
            train/test class folders that differ (all are ``ValueError`` subclasses).
    """
    kind, arg = _parse_source(source)
    split = _normalise_split(split)
    check_options(source, options)
    extra = dict(options)
    mean = extra.pop("mean", None)
    std = extra.pop("std", None)
    skip_bad = bool(extra.pop("skip_bad_images", False))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise DatasetError(f"limit must be a positive integer or None, got {limit!r}")
    root = Path(root)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(root)

    if kind == "imagenet":
        base = Path(arg).expanduser() if arg else root.expanduser()
        split_path = base / ("train" if split == "train" else "val")
        if not split_path.is_dir():
            raise DatasetNotFoundError(
                f"ImageNet {split} split not found: expected {split_path}/<wnid>/*.JPEG "
                f"(layout {base}/train/<wnid>/*.JPEG and {base}/val/<wnid>/*.JPEG, val images "
                "sorted into class folders); pass root=<dir> or source 'imagenet:<dir>'"
            )
        classes, samples = _scan_split(base, split, eval_names=("val",))
        subset = _balanced_subset(torch.tensor([lbl for _, lbl in samples]), limit)
        if subset is not None:
            samples = [samples[i] for i in subset.tolist()]
        m, s = STATS["imagenet"]
        mean_, std_ = (mean or m), (std or s)
        return ImageFolderDataset(samples, classes, mean=mean_, std=std_, name=source)

    if kind == "synthetic":
        assert arg is not None
        images, labels, k = _make_synthetic(arg, split, seed, **extra)  # type: ignore[arg-type]
        images, labels = _apply_subset(images, labels, limit)
        classes = [f"class_{i}" for i in range(k)]
        stats = STATS["synthetic"]
    elif kind in ("cifar10", "cifar100"):
        images, labels, classes = _load_torchvision_cifar(kind, split, root, download)
        images, labels = _apply_subset(images, labels, limit)
        stats = STATS[kind]
    elif kind == "folder":
        images, labels, classes = _load_folder(Path(arg or ""), split, cache, limit, skip_bad)
        stats = _stats_for_classes(classes)
    else:  # tar
        images, labels, classes = _load_tar(Path(arg or ""), split, cache, limit, skip_bad)
        stats = _stats_for_classes(classes)
    return TensorImageDataset(
        images=images,
        labels=labels,
        num_classes=len(classes),
        classes=list(classes),
        mean=tuple(mean) if mean is not None else stats[0],  # type: ignore[arg-type]
        std=tuple(std) if std is not None else stats[1],  # type: ignore[arg-type]
        name=source,
    )


def check_source(source: str, *, root: str | Path = "data") -> None:
    """Raise a one-line :class:`DatasetError` if ``source`` is absent or malformed.

    :class:`DatasetNotFoundError` (a subclass) says what to put where when files are missing.
    Cheap: looks only at files and folders, decodes and extracts nothing (the workflow calls it
    before any job runs): for ``folder:`` and ``imagenet`` trees it also checks that no class
    folder is empty and that train and test hold the same class folders.  Synthetic sources
    always exist.
    """
    kind, arg = _parse_source(source)
    root = Path(root).expanduser()
    if kind == "synthetic":
        return
    if kind in ("cifar10", "cifar100"):
        folder = "cifar-10-batches-py" if kind == "cifar10" else "cifar-100-python"
        if not (root / folder).is_dir():
            raise DatasetNotFoundError(
                f"{kind} not found: put the python version '{folder}/' under {root.resolve()} "
                "(torchvision's download), or point data_root at the directory holding it"
            )
    elif kind == "imagenet":
        base = Path(arg).expanduser() if arg else root
        if not (base / "train").is_dir() or not (base / "val").is_dir():
            raise DatasetNotFoundError(
                f"ImageNet not found: expected {base.resolve()}/train/<wnid>/*.JPEG and "
                f"{base.resolve()}/val/<wnid>/*.JPEG"
            )
        _tree_classes(base, ("val",))
    elif kind == "tar":
        _require_archive(Path(arg or ""))
    else:
        _tree_classes(_find_tree_root(Path(arg or "").expanduser()))


def num_classes_of(
    source: str,
    *,
    root: str | Path = "data",
    cache_dir: str | Path | None = None,
    **options: object,
) -> int:
    """Number of classes ``load_dataset(source, ...)`` gives, without decoding any image.

    Takes the same ``root``, ``cache_dir`` and source options (checked by
    :func:`check_options`) as :func:`load_dataset`.  cifar10 -> 10, cifar100 -> 100;
    synthetic -> ``num_classes`` option or the preset (10 / 100 / 10); imagenet -> the number of
    class folders when the tree exists (checked like :func:`check_source`), else 1000;
    folder:/tar: -> the number of class folders (``tar:`` extracts the archive into the cache
    once, as loading does).  Raises :class:`DatasetError` like :func:`load_dataset` for a missing
    or malformed tree.
    """
    kind, arg = _parse_source(source)
    check_options(source, options)
    if kind in ("cifar10", "cifar100"):
        return 10 if kind == "cifar10" else 100
    if kind == "synthetic":
        assert arg is not None
        n = options.get("num_classes")
        return int(n) if n is not None else _SYNTH_PRESETS[arg]["num_classes"]  # type: ignore[call-overload]
    root = Path(root).expanduser()
    if kind == "imagenet":
        base = Path(arg).expanduser() if arg else root
        if not _split_dirs(base, ("val",)):
            return 1000
        return len(_tree_classes(base, ("val",)))
    path = Path(arg or "").expanduser()
    if kind == "tar":
        cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(root)
        path = _cached_extraction(_require_archive(path), cache)
    return len(_tree_classes(_find_tree_root(path)))


# --------------------------------------------------------------------------- batching


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
