"""Source strings of :mod:`qac.data`: :func:`load_dataset`, checks and the torchvision CIFAR copies.

The sources, options, subsets and statistics are described in :mod:`qac.data`'s docstring.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from qac.data.cache import _cached_extraction, default_cache_dir
from qac.data.datasets import (
    STATS,
    ImageFolderDataset,
    TensorImageDataset,
    _apply_subset,
    _balanced_subset,
    _stats_for_classes,
)
from qac.data.errors import DatasetError, DatasetNotFoundError, DatasetOptionError
from qac.data.folders import (
    _find_tree_root,
    _load_folder,
    _load_tar,
    _require_archive,
    _scan_split,
    _split_dirs,
    _tree_classes,
)
from qac.data.synthetic import _SYNTH_KEYS, _SYNTH_PRESETS, _make_synthetic

__all__ = ["check_options", "check_source", "first_present", "load_dataset", "num_classes_of"]

#: The folder of torchvision's python version of each CIFAR source under ``data_root``.
_CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


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


# --------------------------------------------------------------------------- options


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


# --------------------------------------------------------------------------- public API


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
    """Load one split of a dataset source (sources: :mod:`qac.data`; caches: :mod:`qac.data.cache`).

    Args:
        source: ``cifar10``, ``cifar100``, ``imagenet[:<path>]``, ``folder:<path>``,
            ``tar:<path>``, ``synthetic[-cifar10|-cifar100|-imagenet]``.
        split: ``"train"`` or ``"test"`` (``"val"`` is an alias of ``"test"``).
        root: data directory for cifar10/cifar100/imagenet; default cache location.
        cache_dir: cache directory (default ``$QAC_CACHE_DIR`` or ``<root>/.cache``).
        limit: keep a class-balanced subset of this many samples (see :mod:`qac.data`).
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


def check_source(
    source: str | Sequence[str], *, root: str | Path = "data", download: bool = False
) -> None:
    """Raise a one-line :class:`DatasetError` if ``source`` is absent or malformed.

    :class:`DatasetNotFoundError` (a subclass) says what to put where when files are missing.
    Cheap: looks only at files and folders, decodes and extracts nothing (the workflow calls it
    before any job runs): for ``folder:`` and ``imagenet`` trees it also checks that no class
    folder is empty and that train and test hold the same class folders.  Synthetic sources
    always exist, and so do ``cifar10``/``cifar100`` with ``download=True`` (the ``download``
    option of :func:`load_dataset`: torchvision fetches them on first use).  A list of sources
    is present when one of them is (:func:`first_present`).
    """
    if not isinstance(source, str) and isinstance(source, Sequence):
        first_present(source, root=root, download=download)
        return
    kind, arg = _parse_source(source)
    root = Path(root).expanduser()
    if kind == "synthetic":
        return
    if kind in _CIFAR_FOLDERS and download:
        return
    if kind in _CIFAR_FOLDERS:
        folder = _CIFAR_FOLDERS[kind]
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


def _source_place(source: str, root: Path) -> str:
    """``source`` and where it is looked for (absolute paths), for error messages."""
    kind, arg = _parse_source(source)
    if kind in _CIFAR_FOLDERS:
        return f"{source} ({(root / _CIFAR_FOLDERS[kind]).resolve()}/)"
    if kind == "imagenet":
        base = (Path(arg).expanduser() if arg else root).resolve()
        return f"{source} ({base}/train/ and {base}/val/)"
    return f"{source} ({Path(arg or '').expanduser().resolve()})"


def _source_fix(source: str, root: Path) -> str:
    """How to make ``source`` present, for error messages."""
    kind, arg = _parse_source(source)
    if kind in _CIFAR_FOLDERS:
        name = "CIFAR10" if kind == "cifar10" else "CIFAR100"
        where = root.resolve()
        return (
            f"put torchvision's {_CIFAR_FOLDERS[kind]}/ under {where} (python -c \"import "
            f"torchvision; torchvision.datasets.{name}('{where}', download=True)\" fetches it)"
        )
    if kind == "tar":
        return f"put the archive at {Path(arg or '').expanduser().resolve()}"
    return f"create {_source_place(source, root)}"


def first_present(
    sources: Sequence[str], *, root: str | Path = "data", download: bool = False
) -> str:
    """The first of ``sources`` that :func:`check_source` finds present (an ordered list of
    preferences, e.g. ``["cifar10", "tar:cifar10-jpeg.tar.gz"]``: torchvision's files under
    ``root`` if they are there, else the JPEG archive).

    Raises :class:`DatasetNotFoundError` (one line naming every place looked and how to fill
    each) when none is, and the :class:`DatasetError` of a malformed source at once.
    """
    if isinstance(sources, str) or not sources:
        raise DatasetError(f"expected a non-empty list of dataset sources, got {sources!r}")
    root = Path(root).expanduser()
    for source in sources:
        try:
            check_source(source, root=root, download=download)
        except DatasetNotFoundError:
            continue
        return source
    places = "; ".join(_source_place(s, root) for s in sources)
    fixes = ", or ".join(_source_fix(s, root) for s in sources)
    raise DatasetNotFoundError(
        f"none of the sources {list(sources)} is present (looked for {places}): {fixes}; or "
        "point data_root at the directory holding it"
    )


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
