"""Tests for qac.data.folders (and decode): folder:/tar: trees, checks and bad image files."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import qac.data.folders as data_folders
from qac import data as D
from qac.data import (
    DatasetNotFoundError,
    TensorImageDataset,
    load_dataset,
    num_classes_of,
)
from qac.data.datasets import _balanced_subset
from qac.data.decode import _decode_files
from tests.data_helpers import make_tar, make_tree, one_line

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR10_TAR = Path(
    os.environ.get("QAC_CIFAR10_TAR", REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")
)


def jpeg_bytes(seed: int = 0, size: int = 8) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG")
    return buf.getvalue()


def make_bad_tree(base: Path) -> dict[str, Path]:
    """3 classes x 3 JPEGs per split, plus a truncated and a 0-byte JPEG in train."""
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog", "emu")):
            (base / split / cls).mkdir(parents=True)
            for i in range(3):
                (base / split / cls / f"{i:04d}.jpg").write_bytes(jpeg_bytes(10 * c + i))
    bad = {
        "truncated": base / "train" / "cat" / "0003.jpg",
        "empty": base / "train" / "dog" / "0003.jpg",
    }
    bad["truncated"].write_bytes(jpeg_bytes(99)[:200])
    bad["empty"].write_bytes(b"")
    return bad


def _write(folder: Path, blobs: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:04d}.jpg" for i in range(len(blobs))]
    for path, blob in zip(paths, blobs, strict=True):
        path.write_bytes(blob)
    return paths


# --------------------------------------------------------------------------- folder trees


def test_folder_roundtrip_and_label_order(tmp_path: Path) -> None:
    classes = {"zebra": 2, "apple": 3, "mango": 1}
    arrays = make_tree(tmp_path / "tree", classes)
    ds = load_dataset(f"folder:{tmp_path / 'tree'}", "train", cache_dir=tmp_path / "c")
    assert isinstance(ds, TensorImageDataset)
    assert ds.classes == ["apple", "mango", "zebra"] and ds.num_classes == 3
    assert ds.labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert ds.images.shape == (6, 3, 6, 8)
    expected = [a for c in ds.classes for a in arrays[("train", c)]]
    for img, arr in zip(ds.images, expected, strict=True):
        assert np.array_equal(img.permute(1, 2, 0).numpy(), arr)  # PNG is lossless
    # unknown class names -> ImageNet statistics
    assert ds.mean == D.STATS["imagenet"][0]
    te = load_dataset(f"folder:{tmp_path / 'tree'}", "test", cache_dir=tmp_path / "c")
    assert len(te) == 6 and te.classes == ds.classes


def test_folder_val_alias_and_top_level(tmp_path: Path) -> None:
    make_tree(tmp_path / "wrap" / "inner", {"b": 1, "a": 2}, splits=("train", "val"))
    src = f"folder:{tmp_path / 'wrap'}"
    te = load_dataset(src, "test", cache_dir=tmp_path / "c")
    assert len(te) == 3 and te.classes == ["a", "b"] and te.labels.tolist() == [0, 0, 1]


def test_folder_class_folders_must_match_across_splits(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"a": 1, "c": 1}, splits=("train",))
    make_tree(tmp_path / "t", {"b": 1, "c": 1}, splits=("test",))
    src = f"folder:{tmp_path / 't'}"
    pattern = (
        rf"class folders of {tmp_path / 't' / 'train'} and {tmp_path / 't' / 'test'} differ "
        r"\(only in train: \['a'\], only in test: \['b'\]\)"
    )
    for split in ("train", "test"):
        with pytest.raises(D.DatasetError, match=pattern):
            load_dataset(src, split, cache_dir=tmp_path / "c")
    with pytest.raises(D.DatasetError, match=pattern):
        D.check_source(src)
    with pytest.raises(D.DatasetError, match=pattern):
        num_classes_of(src)
    assert not (tmp_path / "c").exists()  # nothing decoded or cached


def test_folder_cifar10_names_get_cifar10_stats(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", dict.fromkeys(D.CIFAR10_CLASSES, 1), splits=("train",))
    ds = load_dataset(f"folder:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c")
    assert (ds.mean, ds.std) == D.STATS["cifar10"]
    ds2 = load_dataset(
        f"folder:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c", mean=(0, 0, 0), std=(1, 1, 1)
    )
    assert ds2.mean == (0.0, 0.0, 0.0) and ds2.std == (1.0, 1.0, 1.0)


def test_folder_limit_decodes_only_selected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "t", {"a": 6, "b": 6, "c": 6}, splits=("train",))
    decoded: list[int] = []
    real = data_folders._decode_files

    def spy(paths: list[str], skipped: list[int] | None = None) -> torch.Tensor:
        decoded.append(len(paths))
        return real(paths, skipped)

    monkeypatch.setattr(data_folders, "_decode_files", spy)
    ds = load_dataset(f"folder:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c", limit=6)
    assert decoded == [6]
    assert torch.bincount(ds.labels).tolist() == [2, 2, 2]
    assert not list((tmp_path / "c").rglob("*.pt"))  # subsets are not cached
    full = load_dataset(f"folder:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c")
    idx = _balanced_subset(full.labels, 6)
    assert idx is not None and torch.equal(full.images[idx], ds.images)


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="train/<class>"):
        load_dataset(f"folder:{tmp_path / 'nope'}", "train", cache_dir=tmp_path / "c")
    make_tree(tmp_path / "t", {"a": 1}, splits=("train",))
    with pytest.raises(DatasetNotFoundError, match="split 'test' missing"):
        load_dataset(f"folder:{tmp_path / 't'}", "test", cache_dir=tmp_path / "c")
    make_tree(tmp_path / "t", {"b": 1}, splits=("train",), size=(5, 5))
    with pytest.raises(ValueError, match="equally sized"):
        load_dataset(f"folder:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c")


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("content", ["nothing", "a text file"])
def test_empty_class_folder_is_error(tmp_path: Path, split: str, content: str) -> None:
    make_tree(tmp_path / "t", {"a": 2, "b": 2})
    empty = tmp_path / "t" / split / "zz"
    empty.mkdir()
    if content != "nothing":
        (empty / "README.txt").write_text("no images here")
    src = f"folder:{tmp_path / 't'}"
    pattern = f"class folder {empty} holds no image files .*: add images or remove the folder"
    for s in ("train", "test"):
        with pytest.raises(D.DatasetError, match=pattern) as exc:
            load_dataset(src, s, cache_dir=tmp_path / "c")
        one_line(exc)
    with pytest.raises(D.DatasetError, match=pattern):
        D.check_source(src)
    with pytest.raises(D.DatasetError, match=pattern):
        num_classes_of(src)


def test_empty_class_folder_in_tar_is_error(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"a": 2, "b": 2})
    (tmp_path / "t" / "test" / "zz").mkdir()
    tar = make_tar(tmp_path / "t", tmp_path / "t.tar", "top")
    with pytest.raises(D.DatasetError, match=r"class folder .*/top/test/zz holds no image files"):
        load_dataset(f"tar:{tar}", "train", cache_dir=tmp_path / "c")
    assert not list((tmp_path / "c").rglob("*.pt"))


# --------------------------------------------------------------------------- bad image files


@pytest.mark.parametrize("kind", ["folder", "tar"])
def test_undecodable_image_is_named_in_one_line(tmp_path: Path, kind: str) -> None:
    bad = make_bad_tree(tmp_path / "t")
    src = f"folder:{tmp_path / 't'}"
    if kind == "tar":
        src = f"tar:{make_tar(tmp_path / 't', tmp_path / 't.tar.gz', 'top')}"
        bad["truncated"].unlink()  # the archive keeps its own copy
    with pytest.raises(D.ImageDecodeError) as exc:
        load_dataset(src, "train", cache_dir=tmp_path / "c")
    msg = one_line(exc)
    assert re.match(
        r"cannot decode image \S*/train/cat/0003\.jpg \(.*truncated.*\): remove", msg, re.I
    )
    assert "skip_bad_images=True" in msg and exc.value.path.endswith("cat/0003.jpg")
    assert not list((tmp_path / "c").rglob("*.pt"))  # no cache from a failed decode
    # the test split has no bad file: it loads (and is cached)
    assert len(load_dataset(src, "test", cache_dir=tmp_path / "c")) == 9


def test_empty_and_garbage_files_are_named(tmp_path: Path) -> None:
    bad = make_bad_tree(tmp_path / "t")
    bad["truncated"].unlink()
    src = f"folder:{tmp_path / 't'}"
    with pytest.raises(D.ImageDecodeError, match=rf"image {bad['empty']} \(empty file, 0 bytes\)"):
        load_dataset(src, "train", cache_dir=tmp_path / "c")
    bad["empty"].write_bytes(b"<html>not an image</html>")
    with pytest.raises(D.ImageDecodeError, match=rf"{bad['empty']} \(not an image in a known"):
        load_dataset(src, "train", cache_dir=tmp_path / "c", limit=9)


def test_skip_bad_images(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = make_bad_tree(tmp_path / "t")
    src, cache = f"folder:{tmp_path / 't'}", tmp_path / "c"
    with caplog.at_level("WARNING", logger="qac.data"):
        ds = load_dataset(src, "train", cache_dir=cache, skip_bad_images=True)
    assert len(ds) == 9 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.classes == ["cat", "dog", "emu"]
    full = [jpeg_bytes(10 * c + i) for c in range(3) for i in range(3)]
    assert torch.equal(ds.images, _decode_files(_write(tmp_path / "ok", full)))
    assert f"skipped 2 undecodable image(s) of 11 (first: {bad['truncated']})" in caplog.text
    assert not list(cache.rglob("*.pt"))  # never cached: the default still raises afterwards
    with pytest.raises(D.ImageDecodeError, match="0003.jpg"):
        load_dataset(src, "train", cache_dir=cache)
    sub = load_dataset(src, "train", cache_dir=cache, limit=6, skip_bad_images=True)
    assert len(sub) <= 6 and sub.images.shape[1:] == (3, 8, 8)


# --------------------------------------------------------------------------- real CIFAR-10


@pytest.fixture(scope="session")
def cifar10_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CIFAR10_TAR.is_file():
        pytest.skip(f"offline CIFAR-10 copy not found at {CIFAR10_TAR} (set QAC_CIFAR10_TAR)")
    return tmp_path_factory.mktemp("cifar10-cache")


def test_real_cifar10_limit(cifar10_cache: Path) -> None:
    """A class-balanced subset decodes only the selected files (after the one-off extraction)."""
    src = f"tar:{CIFAR10_TAR}"
    tr = load_dataset(src, "train", cache_dir=cifar10_cache, limit=200)
    te = load_dataset(src, "test", cache_dir=cifar10_cache, limit=100)
    assert tr.images.shape == (200, 3, 32, 32) and te.images.shape == (100, 3, 32, 32)
    assert tr.classes == list(D.CIFAR10_CLASSES)
    assert torch.bincount(tr.labels).tolist() == [20] * 10
    assert torch.bincount(te.labels).tolist() == [10] * 10
    assert (tr.mean, tr.std) == D.STATS["cifar10"]


def test_real_cifar10_full(cifar10_cache: Path) -> None:
    src = f"tar:{CIFAR10_TAR}"
    t0 = time.perf_counter()
    tr = load_dataset(src, "train", cache_dir=cifar10_cache)
    te = load_dataset(src, "test", cache_dir=cifar10_cache)
    first = time.perf_counter() - t0
    assert tr.images.shape == (50000, 3, 32, 32) and te.images.shape == (10000, 3, 32, 32)
    assert torch.bincount(tr.labels).tolist() == [5000] * 10
    assert torch.bincount(te.labels).tolist() == [1000] * 10
    assert tr.classes == te.classes == list(D.CIFAR10_CLASSES)
    mean = (te.images.float() / 255).mean(dim=(0, 2, 3))
    torch.testing.assert_close(mean, torch.tensor(D.STATS["cifar10"][0]), atol=0.02, rtol=0)
    t0 = time.perf_counter()
    again = load_dataset(src, "train", cache_dir=cifar10_cache)
    cached = time.perf_counter() - t0
    assert torch.equal(again.images[::997], tr.images[::997])
    assert cached < 5.0
    print(f"\nreal CIFAR-10: first load {first:.1f}s (train+test), cached train {cached:.3f}s")
    sub = load_dataset(src, "train", cache_dir=cifar10_cache, limit=200)
    idx = _balanced_subset(tr.labels, 200)
    assert idx is not None and torch.equal(sub.images, tr.images[idx])
