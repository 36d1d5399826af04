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


Cache layout (extractions, decoded ``.pt`` splits): :mod:`qac.data.cache`.  Augmentation (crop,
flip, AutoAugment, Cutout, their seeding): :mod:`qac.data.augment`.

Modules
-------
``sources``    source strings, :func:`load_dataset`, :func:`check_source`, :func:`check_options`,
               :func:`first_present` (ordered source lists), :func:`num_classes_of`, the
               torchvision CIFAR copies
``folders``    ``folder:``/``tar:`` ImageFolder trees: scan, check, decode (cached)
``cache``      atomic archive extraction, decoded-split tensor caches and their keys
``decode``     image files to uint8 tensors
``synthetic``  the synthetic generator
``datasets``   :class:`TensorImageDataset`, :class:`ImageFolderDataset`, statistics, subsets
``augment``    :class:`AugmentConfig`, batched crop/flip/cutout, the AutoAugment port
``loader``     :class:`BatchLoader` (seeded order, augmentation, per-rank sharding)
``errors``     :class:`DatasetError` and its subclasses
"""

from __future__ import annotations

from qac.data.augment import AugmentConfig, autoaugment_batch
from qac.data.cache import default_cache_dir
from qac.data.datasets import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    STATS,
    ImageFolderDataset,
    TensorImageDataset,
)
from qac.data.errors import (
    DatasetError,
    DatasetNotFoundError,
    DatasetOptionError,
    ImageDecodeError,
)
from qac.data.loader import BatchLoader
from qac.data.sources import (
    check_options,
    check_source,
    first_present,
    load_dataset,
    num_classes_of,
)

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
    "first_present",
    "num_classes_of",
    "default_cache_dir",
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "STATS",
]
