"""ImageFolder trees of :mod:`qac.data` (sources ``folder:`` and ``tar:``): scan, check, decode.

A tree is ``<path>/train/<class>/*`` and ``<path>/test/<class>/*`` (``val`` accepted for
``test``), optionally below one single top-level folder; label order = class folder names sorted.
Both splits must hold the same class folders and no class folder may be empty.  A split is decoded
once into a uint8 ``[N,3,H,W]`` tensor cached as ``.pt`` (:mod:`qac.data.cache`); ``tar:``
archives are first extracted into the cache.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from qac.data.cache import (
    _archive_key,
    _archive_stem,
    _cached_extraction,
    _folder_key,
    _read_tensor_cache,
    _tensor_cache_file,
    _write_tensor_cache,
)
from qac.data.datasets import _apply_subset, _balanced_subset
from qac.data.decode import _decode_files
from qac.data.errors import DatasetError, DatasetNotFoundError

log = logging.getLogger(__name__)

_IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
)


# --------------------------------------------------------------------------- scanning


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


# --------------------------------------------------------------------------- decoding (cached)


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
        _write_tensor_cache(cache_file, images, labels, classes)
    return images, labels, classes


def _load_folder(
    path: Path, split: str, cache_dir: Path, limit: int | None, skip_bad_images: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    tree = _find_tree_root(path.expanduser())
    classes, samples = _scan_split(tree, split)
    key = _folder_key(tree, split, classes, [p for p, _ in samples])
    cache_file = _tensor_cache_file(cache_dir, "folder", tree.name, split, key)
    cached = _read_tensor_cache(cache_file)
    if cached is not None:
        images, labels, classes = cached
        return (*_apply_subset(images, labels, limit), classes)
    return _decode_split(samples, classes, cache_file, limit, skip_bad_images)


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
    cache_file = _tensor_cache_file(cache_dir, "tar", _archive_stem(archive), split, key)
    cached = _read_tensor_cache(cache_file)
    if cached is not None:
        images, labels, classes = cached
        _check_labels(labels, classes, f"the {split} split of {archive} (cache {cache_file})")
        return (*_apply_subset(images, labels, limit), classes)
    tree = _find_tree_root(_cached_extraction(archive, cache_dir))
    classes, samples = _scan_split(tree, split)
    return _decode_split(samples, classes, cache_file, limit, skip_bad_images)
