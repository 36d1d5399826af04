"""Tests for qac.data.cache: cache location, tensor caches and archive extraction."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import qac.data.cache as data_cache
import qac.data.folders as data_folders
from qac import data as D
from qac.data import (
    DatasetNotFoundError,
    load_dataset,
)
from qac.data.cache import _archive_key, _atomic_torch_save, _read_tensor_cache
from tests.data_helpers import make_tar, make_tree


def test_cache_dir_default_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QAC_CACHE_DIR", raising=False)
    assert D.default_cache_dir(tmp_path) == tmp_path / ".cache"
    monkeypatch.setenv("QAC_CACHE_DIR", str(tmp_path / "envcache"))
    assert D.default_cache_dir(tmp_path) == tmp_path / "envcache"
    make_tree(tmp_path / "tree", {"a": 2})
    load_dataset(f"folder:{tmp_path / 'tree'}", "train", root=tmp_path)
    assert list((tmp_path / "envcache" / "tensors").glob("*.pt"))
    assert not (tmp_path / ".cache").exists()


# --------------------------------------------------------------------------- tensor caches


def test_folder_cache_reuse_and_invalidation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "t", {"a": 2, "b": 2})
    src, cache = f"folder:{tmp_path / 't'}", tmp_path / "c"
    first = load_dataset(src, "train", cache_dir=cache)
    assert len(list((cache / "tensors").glob("folder-t-train-*.pt"))) == 1

    def boom(paths: object, skipped: object = None) -> None:
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:
        m.setattr(data_folders, "_decode_files", boom)
        again = load_dataset(src, "train", cache_dir=cache)
        assert torch.equal(again.images, first.images)
    again.images.zero_()  # the cache is memory-mapped copy-on-write: the file is untouched
    assert torch.equal(load_dataset(src, "train", cache_dir=cache).images, first.images)
    # change one file -> new key -> decoded again with the new pixels
    new = np.full((6, 8, 3), 7, dtype=np.uint8)
    Image.fromarray(new).save(tmp_path / "t" / "train" / "b" / "0001.png")
    changed = load_dataset(src, "train", cache_dir=cache)
    assert np.array_equal(changed.images[3].permute(1, 2, 0).numpy(), new)


def test_corrupt_tensor_cache_is_rebuilt(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"a": 2})
    src, cache = f"folder:{tmp_path / 't'}", tmp_path / "c"
    first = load_dataset(src, "train", cache_dir=cache)
    (pt,) = (cache / "tensors").glob("*.pt")
    pt.write_bytes(b"not a torch file")
    again = load_dataset(src, "train", cache_dir=cache)
    assert torch.equal(first.images, again.images)
    assert _read_tensor_cache(pt) is not None  # rewritten, valid again


def test_atomic_save_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(obj: object, f: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        _atomic_torch_save({"x": 1}, tmp_path / "d" / "x.pt")
    assert list((tmp_path / "d").iterdir()) == []


def test_cached_tar_split_missing_a_class_is_error(tmp_path: Path) -> None:
    """A decoded-split cache from before the class checks (e.g. an empty class) is refused."""
    make_tree(tmp_path / "t", {"a": 2, "b": 2})
    tar = make_tar(tmp_path / "t", tmp_path / "t.tar", "top")
    load_dataset(f"tar:{tar}", "train", cache_dir=tmp_path / "c")
    (cache_file,) = (tmp_path / "c" / "tensors").glob("tar-t-train-*.pt")
    obj = torch.load(cache_file, weights_only=True)
    obj["classes"] = ["a", "b", "zz"]
    torch.save(obj, cache_file)
    with pytest.raises(D.DatasetError, match=r"train split of .*t\.tar .*class\(es\) \['zz'\]"):
        load_dataset(f"tar:{tar}", "train", cache_dir=tmp_path / "c")


# --------------------------------------------------------------------------- tar extraction


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar"])
def test_tar_loads_like_folder_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    make_tree(tmp_path / "tree", {"dog": 2, "cat": 3})
    archive = make_tar(tmp_path / "tree", tmp_path / f"pets{suffix}", "pets-png")
    cache = tmp_path / "cache"
    calls: list[Path] = []
    real_extract = data_cache._extract_tar

    def counting(a: Path, dest: Path) -> None:
        calls.append(a)
        real_extract(a, dest)

    monkeypatch.setattr(data_cache, "_extract_tar", counting)
    tr = load_dataset(f"tar:{archive}", "train", cache_dir=cache)
    te = load_dataset(f"tar:{archive}", "test", cache_dir=cache)
    ref = load_dataset(f"folder:{tmp_path / 'tree'}", "train", cache_dir=tmp_path / "c2")
    assert calls == [archive]  # extracted once for both splits
    assert tr.classes == ["cat", "dog"] and tr.labels.tolist() == [0, 0, 0, 1, 1]
    assert torch.equal(tr.images, ref.images) and len(te) == 5
    (ext,) = (cache / "extracted").iterdir()
    assert (ext / ".qac-complete").is_file() and (ext / "pets-png" / "train" / "cat").is_dir()
    assert len(list((cache / "tensors").glob("tar-pets-*.pt"))) == 2

    def boom(*args: object) -> None:
        raise AssertionError("extracted or decoded again")

    monkeypatch.setattr(data_cache, "_extract_tar", boom)
    with monkeypatch.context() as m:  # tensor cache hit: neither extraction nor decoding
        m.setattr(data_folders, "_decode_files", boom)
        assert torch.equal(
            load_dataset(f"tar:{archive}", "train", cache_dir=cache).images, tr.images
        )
    for pt in (cache / "tensors").glob("*.pt"):  # tensor cache gone: reuse the extraction
        pt.unlink()
    assert torch.equal(load_dataset(f"tar:{archive}", "train", cache_dir=cache).images, tr.images)


def test_tar_changed_archive_invalidates(tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", {"a": 2})
    archive = make_tar(tmp_path / "tree", tmp_path / "x.tar.gz", "x")
    cache = tmp_path / "cache"
    old = load_dataset(f"tar:{archive}", "train", cache_dir=cache)
    make_tree(tmp_path / "tree", {"a": 2}, seed=99)  # new pixels, same names
    make_tar(tmp_path / "tree", archive, "x")
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    new = load_dataset(f"tar:{archive}", "train", cache_dir=cache)
    assert not torch.equal(old.images, new.images)
    assert len(list((cache / "extracted").iterdir())) == 2


def test_tar_incomplete_extraction_not_trusted(tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", {"a": 2, "b": 1})
    archive = make_tar(tmp_path / "tree", tmp_path / "x.tgz", "x")
    cache = tmp_path / "cache"
    # simulate a crash that left a half-written folder under the final name (no marker)
    final = cache / "extracted" / f"x-{_archive_key(archive)}"
    (final / "x" / "train" / "a").mkdir(parents=True)
    ds = load_dataset(f"tar:{archive}", "train", cache_dir=cache)
    assert len(ds) == 3 and ds.classes == ["a", "b"]
    assert (final / ".qac-complete").is_file()


def test_tar_missing_or_corrupt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DatasetNotFoundError, match="nope.tar.gz"):
        load_dataset(f"tar:{tmp_path / 'nope.tar.gz'}", "train", cache_dir=cache)
    make_tree(tmp_path / "tree", {"a": 30}, size=(32, 32))
    good = make_tar(tmp_path / "tree", tmp_path / "good.tar.gz", "x")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated
    with pytest.raises(DatasetNotFoundError, match="cannot extract archive .*bad.tar.gz"):
        load_dataset(f"tar:{bad}", "train", cache_dir=cache)
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"\x00hello" * 100)
    with pytest.raises(DatasetNotFoundError, match="garbage.tar"):
        load_dataset(f"tar:{garbage}", "train", cache_dir=cache)
    leftovers = list((cache / "extracted").iterdir())
    assert leftovers == [], leftovers  # no partial extraction left behind


def test_tar_rejects_unsafe_members(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        info = tarfile.TarInfo("../escaped.txt")
        payload = b"gotcha"
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    with pytest.raises(DatasetNotFoundError, match="unsafe"):
        load_dataset(f"tar:{evil}", "train", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
