"""Tests for qac.data: dataset sources, caches and the batch loader."""

from __future__ import annotations

import io
import os
import pickle
import re
import socket
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qac import data as D
from qac.data import (
    AugmentConfig,
    BatchLoader,
    DatasetNotFoundError,
    ImageFolderDataset,
    TensorImageDataset,
    load_dataset,
    num_classes_of,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CIFAR10_TAR = Path(
    os.environ.get("QAC_CIFAR10_TAR", REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")
)


# --------------------------------------------------------------------------- helpers


def make_tree(
    base: Path,
    classes: dict[str, int],
    *,
    splits: tuple[str, ...] = ("train", "test"),
    size: tuple[int, int] = (8, 6),
    fmt: str = "png",
    seed: int = 0,
) -> dict[tuple[str, str], list[np.ndarray]]:
    """Write an ImageFolder tree of random images; return the arrays per (split, class)."""
    rng = np.random.default_rng(seed)
    arrays: dict[tuple[str, str], list[np.ndarray]] = {}
    for split in splits:
        for cls, n in classes.items():
            d = base / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:04d}.{fmt}")
                arrays.setdefault((split, cls), []).append(arr)
    return arrays


def make_tar(src_dir: Path, out: Path, arcname: str) -> Path:
    mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
    with tarfile.open(out, mode) as tf:
        tf.add(src_dir, arcname=arcname)
    return out


def tiny_dataset(n: int = 16, size: int = 8, classes: int = 4, seed: int = 0) -> TensorImageDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorImageDataset(
        images=torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g),
        labels=torch.arange(n) % classes,
        num_classes=classes,
        classes=[f"c{i}" for i in range(classes)],
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
    )


def normalise(images: torch.Tensor, ds: TensorImageDataset) -> torch.Tensor:
    mean = torch.tensor(ds.mean).view(1, 3, 1, 1)
    std = torch.tensor(ds.std).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything tries to open a network connection."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


# --------------------------------------------------------------------------- sources / API


def test_unknown_source_and_split() -> None:
    with pytest.raises(ValueError, match="unknown dataset source"):
        load_dataset("mnist", "train")
    with pytest.raises(ValueError, match="split"):
        load_dataset("synthetic", "validation-ish")
    with pytest.raises(ValueError, match="path"):
        load_dataset("folder:", "train")
    with pytest.raises(TypeError, match=r"does not take option\(s\) \['bogus'\]"):
        load_dataset("synthetic", "train", bogus=1)
    with pytest.raises(TypeError, match=r"does not take option\(s\) \['num_classes'\]"):
        load_dataset("cifar10", "train", num_classes=3)
    with pytest.raises(ValueError, match="limit"):
        load_dataset("synthetic", "train", limit=0)


def test_error_is_file_not_found() -> None:
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


def test_num_classes_of(tmp_path: Path) -> None:
    assert num_classes_of("cifar10") == 10
    assert num_classes_of("cifar100") == 100
    assert num_classes_of("imagenet") == 1000
    assert num_classes_of("synthetic") == 10
    assert num_classes_of("synthetic-cifar100") == 100
    assert num_classes_of("synthetic-imagenet") == 10
    assert num_classes_of("synthetic-imagenet", num_classes=7) == 7
    make_tree(tmp_path / "tree", {"a": 1, "b": 1, "c": 1})
    assert num_classes_of(f"folder:{tmp_path / 'tree'}") == 3
    tar = make_tar(tmp_path / "tree", tmp_path / "t.tar", "top")
    assert num_classes_of(f"tar:{tar}", cache_dir=tmp_path / "cache") == 3


def test_cache_dir_default_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QAC_CACHE_DIR", raising=False)
    assert D.default_cache_dir(tmp_path) == tmp_path / ".cache"
    monkeypatch.setenv("QAC_CACHE_DIR", str(tmp_path / "envcache"))
    assert D.default_cache_dir(tmp_path) == tmp_path / "envcache"
    make_tree(tmp_path / "tree", {"a": 2})
    load_dataset(f"folder:{tmp_path / 'tree'}", "train", root=tmp_path)
    assert list((tmp_path / "envcache" / "tensors").glob("*.pt"))
    assert not (tmp_path / ".cache").exists()


def test_cifar100_class_list() -> None:
    assert len(D.CIFAR100_CLASSES) == 100
    assert list(D.CIFAR100_CLASSES) == sorted(D.CIFAR100_CLASSES)
    assert len(set(D.CIFAR100_CLASSES)) == 100


# --------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize(
    ("source", "shape", "classes"),
    [
        ("synthetic", (3, 32, 32), 10),
        ("synthetic-cifar10", (3, 32, 32), 10),
        ("synthetic-cifar100", (3, 32, 32), 100),
        ("synthetic-imagenet", (3, 64, 64), 10),
    ],
)
def test_synthetic_shapes(source: str, shape: tuple[int, int, int], classes: int) -> None:
    tr = load_dataset(source, "train", train_size=300, test_size=120)
    te = load_dataset(source, "val", train_size=300, test_size=120)
    assert isinstance(tr, TensorImageDataset)
    assert tr.images.shape == (300, *shape) and te.images.shape == (120, *shape)
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert tr.num_classes == classes == len(tr.classes)
    assert int(tr.labels.min()) >= 0 and int(tr.labels.max()) < classes
    counts = torch.bincount(tr.labels, minlength=classes)
    assert int(counts.max()) - int(counts.min()) <= 1  # balanced
    assert tr.mean == (0.5, 0.5, 0.5) and tr.std == (0.2, 0.2, 0.2)
    # pixels use the range and are roughly standardised by the declared stats
    x = tr.images.float() / 255
    assert abs(float(x.mean()) - 0.5) < 0.1 and 0.12 < float(x.std()) < 0.3


def test_synthetic_determinism() -> None:
    a = load_dataset("synthetic", "train", seed=3, train_size=200)
    b = load_dataset("synthetic", "train", seed=3, train_size=200)
    c = load_dataset("synthetic", "train", seed=4, train_size=200)
    t = load_dataset("synthetic", "test", seed=3, train_size=200, test_size=200)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.images, t.images)  # test split drawn with another seed


def test_synthetic_options() -> None:
    ds = load_dataset(
        "synthetic-imagenet", "train", num_classes=4, image_size=40, train_size=50, noise=0.0
    )
    assert ds.images.shape == (50, 3, 40, 40) and ds.num_classes == 4
    assert ds.classes == ["class_0", "class_1", "class_2", "class_3"]
    assert num_classes_of("synthetic", num_classes=4) == 4


def test_synthetic_learnable() -> None:
    """Nearest-class-mean + logistic regression on a few hundred samples beats chance clearly."""
    t0 = time.perf_counter()
    tr = load_dataset("synthetic", "train", train_size=500, test_size=300, seed=1)
    te = load_dataset("synthetic", "test", train_size=500, test_size=300, seed=1)
    (xtr, ytr) = next(iter(BatchLoader(tr, len(tr), train=False)))
    (xte, yte) = next(iter(BatchLoader(te, len(te), train=False)))
    torch.manual_seed(0)
    lin = torch.nn.Linear(xtr[0].numel(), tr.num_classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(xtr.flatten(1)), ytr).backward()
        opt.step()
    with torch.no_grad():
        acc = (lin(xte.flatten(1)).argmax(1) == yte).float().mean().item()
    assert acc > 0.5, f"logistic regression accuracy {acc:.3f} (chance 0.1)"
    assert time.perf_counter() - t0 < 30


# --------------------------------------------------------------------------- limit


def test_balanced_subset_properties() -> None:
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 5)
    idx = D._balanced_subset(labels, 30)
    assert idx is not None and len(idx) == 30
    assert torch.equal(idx, torch.sort(idx).values)  # original order kept
    assert torch.bincount(labels[idx], minlength=3).tolist() == [13, 12, 5]
    small = D._balanced_subset(labels, 9)
    assert small is not None and torch.bincount(labels[small]).tolist() == [3, 3, 3]
    assert set(small.tolist()) <= set(idx.tolist())  # nested
    assert D._balanced_subset(labels, 85) is None and D._balanced_subset(labels, None) is None


def test_limit_synthetic_is_class_balanced() -> None:
    full = load_dataset("synthetic", "train", train_size=400)
    sub = load_dataset("synthetic", "train", train_size=400, limit=50)
    assert len(sub) == 50
    assert torch.bincount(sub.labels, minlength=10).tolist() == [5] * 10
    idx = D._balanced_subset(full.labels, 50)
    assert idx is not None and torch.equal(sub.images, full.images[idx])


# --------------------------------------------------------------------------- folder


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
        m.setattr(D, "_decode_files", boom)
        again = load_dataset(src, "train", cache_dir=cache)
        assert torch.equal(again.images, first.images)
    again.images.zero_()  # the cache is memory-mapped copy-on-write: the file is untouched
    assert torch.equal(load_dataset(src, "train", cache_dir=cache).images, first.images)
    # change one file -> new key -> decoded again with the new pixels
    new = np.full((6, 8, 3), 7, dtype=np.uint8)
    Image.fromarray(new).save(tmp_path / "t" / "train" / "b" / "0001.png")
    changed = load_dataset(src, "train", cache_dir=cache)
    assert np.array_equal(changed.images[3].permute(1, 2, 0).numpy(), new)


def test_folder_limit_decodes_only_selected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "t", {"a": 6, "b": 6, "c": 6}, splits=("train",))
    decoded: list[int] = []
    real = D._decode_files

    def spy(paths: list[str], skipped: list[int] | None = None) -> torch.Tensor:
        decoded.append(len(paths))
        return real(paths, skipped)

    monkeypatch.setattr(D, "_decode_files", spy)
    ds = load_dataset(f"folder:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c", limit=6)
    assert decoded == [6]
    assert torch.bincount(ds.labels).tolist() == [2, 2, 2]
    assert not list((tmp_path / "c").rglob("*.pt"))  # subsets are not cached
    full = load_dataset(f"folder:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c")
    idx = D._balanced_subset(full.labels, 6)
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


def test_corrupt_tensor_cache_is_rebuilt(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"a": 2})
    src, cache = f"folder:{tmp_path / 't'}", tmp_path / "c"
    first = load_dataset(src, "train", cache_dir=cache)
    (pt,) = (cache / "tensors").glob("*.pt")
    pt.write_bytes(b"not a torch file")
    again = load_dataset(src, "train", cache_dir=cache)
    assert torch.equal(first.images, again.images)
    assert D._read_tensor_cache(pt) is not None  # rewritten, valid again


def test_atomic_save_leaves_nothing_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(obj: object, f: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        D._atomic_torch_save({"x": 1}, tmp_path / "d" / "x.pt")
    assert list((tmp_path / "d").iterdir()) == []


# --------------------------------------------------------------------------- tar


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar"])
def test_tar_loads_like_folder_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    make_tree(tmp_path / "tree", {"dog": 2, "cat": 3})
    archive = make_tar(tmp_path / "tree", tmp_path / f"pets{suffix}", "pets-png")
    cache = tmp_path / "cache"
    calls: list[Path] = []
    real_extract = D._extract_tar

    def counting(a: Path, dest: Path) -> None:
        calls.append(a)
        real_extract(a, dest)

    monkeypatch.setattr(D, "_extract_tar", counting)
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

    monkeypatch.setattr(D, "_extract_tar", boom)
    with monkeypatch.context() as m:  # tensor cache hit: neither extraction nor decoding
        m.setattr(D, "_decode_files", boom)
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
    final = cache / "extracted" / f"x-{D._archive_key(archive)}"
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


# --------------------------------------------------------------------------- torchvision CIFAR


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(("source", "folder"), [("cifar10", "cifar-10-batches-py"),
                                                ("cifar100", "cifar-100-python")])  # fmt: skip
def test_torchvision_cifar_absent(tmp_path: Path, source: str, folder: str) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(source, "train", root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and folder in msg and "download=True" in msg
    assert "\n" not in msg
    assert list(tmp_path.iterdir()) == []
    if source == "cifar10":
        assert "tar:" in msg


def test_torchvision_cifar_download_failure_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision.datasets.cifar as tv_cifar

    def flaky(url: str, download_root: str, **kw: object) -> None:
        Path(download_root, "cifar-10-python.tar.gz").write_bytes(b"partial")
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", flaky)
    root = tmp_path / "fresh"
    with pytest.raises(DatasetNotFoundError, match="download failed"):
        load_dataset("cifar10", "train", root=root, download=True)
    assert not root.exists()
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "keep.txt").write_text("x")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("cifar10", "test", root=tmp_path / "existing", download=True)
    assert [p.name for p in (tmp_path / "existing").iterdir()] == ["keep.txt"]


def test_torchvision_cifar_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A (fake, checksum-patched) torchvision CIFAR-10 folder is read into NCHW uint8."""
    import torchvision.datasets as tvd
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tvd.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batches[name] = {
            "data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
            "labels": rng.integers(0, 10, 2).tolist(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batches[name], f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(D.CIFAR10_CLASSES)}, f)
    tr = load_dataset("cifar10", "train", root=tmp_path, limit=None)
    te = load_dataset("cifar10", "test", root=tmp_path)
    assert tr.images.shape == (10, 3, 32, 32) and te.images.shape == (2, 3, 32, 32)
    expected = torch.from_numpy(batches["test_batch"]["data"]).view(2, 3, 32, 32)
    assert torch.equal(te.images, expected)
    assert te.labels.tolist() == batches["test_batch"]["labels"]
    assert tr.classes == list(D.CIFAR10_CLASSES) and (tr.mean, tr.std) == D.STATS["cifar10"]


# --------------------------------------------------------------------------- imagenet (lazy)


@pytest.fixture
def imagenet_root(tmp_path: Path) -> Path:
    root = tmp_path / "imagenet"
    make_tree(root, {"n02": 3, "n01": 3}, splits=("train", "val"), size=(80, 80), fmt="JPEG")
    return root


def test_imagenet_lazy_batches(imagenet_root: Path) -> None:
    tr = load_dataset("imagenet", "train", root=imagenet_root)
    va = load_dataset(f"imagenet:{imagenet_root}", "val")
    assert isinstance(tr, ImageFolderDataset) and isinstance(va, ImageFolderDataset)
    assert tr.classes == ["n01", "n02"] and len(tr) == 6 and len(va) == 6
    assert (tr.mean, tr.std) == D.STATS["imagenet"]
    img, label = va[0]
    assert img.shape == (3, 224, 224) and img.dtype == torch.uint8 and label == 0
    loader = BatchLoader(tr, 4, train=True, seed=1, num_workers=0)
    batches = list(loader)
    assert len(loader) == 2 and [x.shape[0] for x, _ in batches] == [4, 2]
    x, y = batches[0]
    assert x.shape == (4, 3, 224, 224) and x.dtype == torch.float32 and y.dtype == torch.int64
    loader.set_epoch(0)
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, loader, strict=True))
    ev = list(BatchLoader(va, 6, train=False, num_workers=0))
    assert ev[0][1].tolist() == [0, 0, 0, 1, 1, 1] and ev[0][0].shape == (6, 3, 224, 224)
    sub = load_dataset("imagenet", "train", root=imagenet_root, limit=2)
    assert len(sub) == 2 and sorted(sub.labels.tolist()) == [0, 1]


def test_imagenet_workers_match_single_process(imagenet_root: Path) -> None:
    tr = load_dataset("imagenet", "train", root=imagenet_root)
    aug = AugmentConfig(cutout=50)
    a = list(BatchLoader(tr, 3, train=True, seed=5, augment=aug, num_workers=0))
    b = list(BatchLoader(tr, 3, train=True, seed=5, augment=aug, num_workers=2))
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_imagenet_color_jitter_of_the_qcfs_loader(imagenet_root: Path) -> None:
    """QCFS's ImageNet loader adds ColorJitter(0.2, 0.2, 0.2, 0.1); seeded like the rest."""
    tr = load_dataset("imagenet", "train", root=imagenet_root)
    jitter = AugmentConfig(color_jitter=(0.2, 0.2, 0.2, 0.1))
    a = next(iter(BatchLoader(tr, 6, train=True, seed=3, augment=jitter, num_workers=0)))[0]
    b = next(iter(BatchLoader(tr, 6, train=True, seed=3, augment=jitter, num_workers=0)))[0]
    plain = next(iter(BatchLoader(tr, 6, train=True, seed=3, num_workers=0)))[0]
    assert torch.equal(a, b) and not torch.equal(a, plain)
    with pytest.raises(ValueError, match="color_jitter must be 4 non-negative numbers"):
        AugmentConfig(color_jitter=(0.2, 0.2))
    cifar = load_dataset("synthetic-cifar10", "train", train_size=20, test_size=10)
    with pytest.raises(ValueError, match="lazy ImageNet loader only"):
        BatchLoader(cifar, 4, train=True, augment=jitter)


def test_imagenet_uses_val_even_with_test_dir(imagenet_root: Path) -> None:
    make_tree(imagenet_root, {"n01": 1}, splits=("test",), size=(80, 80), fmt="JPEG")
    va = load_dataset("imagenet", "test", root=imagenet_root)
    assert isinstance(va, ImageFolderDataset) and len(va) == 6
    assert all("/val/" in p for p, _ in va.samples)


def test_imagenet_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"train/<wnid>/\*\.JPEG"):
        load_dataset("imagenet", "train", root=tmp_path / "none")
    (tmp_path / "only" / "train" / "n01").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="val"):
        load_dataset("imagenet", "test", root=tmp_path / "only")


# --------------------------------------------------------------------------- BatchLoader


def test_eval_loader_no_shuffle_no_augment_and_normalised() -> None:
    ds = tiny_dataset(n=10)
    loader = BatchLoader(ds, 4, train=False, augment=AugmentConfig(cutout=4, autoaugment=True))
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape[0] for b in batches] == [4, 4, 2]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(y, ds.labels)
    torch.testing.assert_close(x, normalise(ds.images, ds))
    assert list(BatchLoader(ds, 4, train=False, drop_last=True)).__len__() == 2
    assert len(BatchLoader(ds, 4, train=False, drop_last=True)) == 2


def test_train_loader_deterministic_per_seed_and_epoch() -> None:
    ds = tiny_dataset(n=40, size=12)
    aug = AugmentConfig(crop_padding=3, flip=True, autoaugment=True, cutout=4)

    def epoch(seed: int, e: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = BatchLoader(ds, 16, train=True, augment=aug, seed=seed)
        loader.set_epoch(e)
        return list(loader)

    def same(a: list, b: list) -> bool:
        pairs = zip(a, b, strict=True)
        return all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in pairs)

    e0 = epoch(0, 0)
    assert same(e0, epoch(0, 0))
    assert not same(e0, epoch(0, 1))
    assert not same(e0, epoch(1, 0))
    # each epoch is a permutation of the whole dataset
    labels = torch.cat([y for _, y in e0])
    assert sorted(labels.tolist()) == sorted(ds.labels.tolist())
    # iterating advances the epoch; set_epoch rewinds
    loader = BatchLoader(ds, 16, train=True, augment=aug, seed=0)
    first, second = list(loader), list(loader)
    assert same(first, e0) and same(second, epoch(0, 1)) and loader.epoch == 2


def test_train_shuffle_without_augmentation() -> None:
    ds = tiny_dataset(n=30)
    x, y = next(iter(BatchLoader(ds, 30, train=True, augment=AugmentConfig.none(), seed=2)))
    assert not torch.equal(y, ds.labels)  # shuffled
    ref = normalise(ds.images, ds)
    # every output image is one dataset image, unchanged
    for xi in x:
        assert any(torch.equal(xi, r) for r in ref)


def test_crop_and_flip_are_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    img = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8, generator=g)
    ds = TensorImageDataset(
        images=img.expand(64, 3, 16, 16).clone(),
        labels=torch.zeros(64, dtype=torch.int64),
        num_classes=1,
        classes=["x"],
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )
    x, _ = next(iter(BatchLoader(ds, 64, train=True, augment=AugmentConfig(), seed=0)))
    distinct = {tuple(v.flatten().tolist()) for v in (x * 255).round().to(torch.uint8)}
    assert len(distinct) > 20  # 81 offsets x 2 flips: identical inputs, different outputs
    # every output is a window of the zero-padded (possibly mirrored) original
    padded = torch.nn.functional.pad(img, (4, 4, 4, 4))
    windows = {
        tuple(v[:, i : i + 16, j : j + 16].flatten().tolist())
        for v in (padded, padded.flip(-1))
        for i in range(9)
        for j in range(9)
    }
    assert distinct <= windows
    # flip only: output is the image or its mirror, and both occur
    x, _ = next(iter(BatchLoader(ds, 64, train=True, augment=AugmentConfig(0, True), seed=0)))
    u8 = (x * 255).round().to(torch.uint8)
    flipped = torch.tensor([torch.equal(v, img.flip(-1)) for v in u8])
    plain = torch.tensor([torch.equal(v, img) for v in u8])
    assert bool((flipped | plain).all()) and 10 < int(flipped.sum()) < 54


def test_cutout_zeroes_one_square_after_normalisation() -> None:
    ds = TensorImageDataset(
        images=torch.full((32, 3, 20, 20), 200, dtype=torch.uint8),
        labels=torch.zeros(32, dtype=torch.int64),
        num_classes=1,
        classes=["x"],
        mean=(0.1, 0.2, 0.3),
        std=(0.5, 0.5, 0.5),
    )
    aug = AugmentConfig(crop_padding=0, flip=False, cutout=8)
    x, _ = next(iter(BatchLoader(ds, 32, train=True, augment=aug, seed=0)))
    holes = (x == 0).all(dim=1)  # [B,H,W]
    assert bool((x[~holes.unsqueeze(1).expand_as(x)] != 0).all())
    sizes = holes.sum(dim=(1, 2))
    assert int(sizes.max()) == 64 and int(sizes.min()) > 0  # clipped at borders sometimes
    for h in holes:  # each hole is an axis-aligned rectangle
        rows, cols = h.any(1).nonzero().flatten(), h.any(0).nonzero().flatten()
        assert int(h.sum()) == len(rows) * len(cols) and len(rows) <= 8 and len(cols) <= 8


def test_autoaugment_batched_matches_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=g)
    ops = "Invert Contrast Rotate TranslateX Sharpness ShearY TranslateY AutoContrast Equalize "
    ops += "Posterize Color Brightness Solarize ShearX"
    from torchvision.transforms import v2

    tv = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=128)
    for op in ops.split():
        mag = D._aa_magnitude(op, 7, 16, 16)
        mag = -mag if op in D._AA_SIGNED else mag
        batched = D._aa_apply(x, op, mag)
        single = torch.stack([D._aa_apply(xi[None], op, mag)[0] for xi in x])
        assert torch.equal(batched, single), op
        if hasattr(tv, "_apply_image_or_video_transform"):  # private torchvision API
            ref = tv._apply_image_or_video_transform(
                x, op, mag, interpolation=tv.interpolation, fill=tv._fill
            )
            assert torch.equal(batched, ref), op
    out1 = D.autoaugment_batch(x, torch.Generator().manual_seed(1))
    out2 = D.autoaugment_batch(x, torch.Generator().manual_seed(1))
    assert torch.equal(out1, out2) and out1.dtype == torch.uint8
    big = x.repeat(20, 1, 1, 1)
    changed = (D.autoaugment_batch(big, torch.Generator().manual_seed(2)) != big).flatten(1).any(1)
    assert 0.3 < changed.float().mean().item() < 1.0


def test_channels_last_and_default_augment() -> None:
    ds = tiny_dataset(n=8, size=8)
    a = next(iter(BatchLoader(ds, 8, train=True, seed=0)))
    b = next(iter(BatchLoader(ds, 8, train=True, seed=0, augment=AugmentConfig(),
                              channels_last=True)))  # fmt: skip
    assert b[0].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # None = AugmentConfig() in train


def test_loader_argument_checks() -> None:
    with pytest.raises(ValueError):
        BatchLoader(tiny_dataset(), 0, train=False)
    with pytest.raises(TypeError):
        BatchLoader([1, 2, 3], 2, train=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="uint8"):
        TensorImageDataset(torch.zeros(2, 3, 4, 4), torch.zeros(2), 1, ["a"], (0, 0, 0), (1, 1, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_loader_on_cuda_matches_cpu() -> None:
    ds = tiny_dataset(n=32, size=16)
    aug = AugmentConfig(crop_padding=4, flip=True, cutout=6)
    cpu = list(BatchLoader(ds, 8, train=True, augment=aug, seed=3))
    gpu = list(BatchLoader(ds, 8, train=True, augment=aug, seed=3, device="cuda"))
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.is_cuda and yg.is_cuda
        torch.testing.assert_close(xg.cpu(), xc)
        assert torch.equal(yg.cpu(), yc)
    aa = AugmentConfig(autoaugment=True)  # runs on the GPU, deterministic there
    a = list(BatchLoader(ds, 8, train=True, augment=aa, seed=3, device="cuda"))
    b = list(BatchLoader(ds, 8, train=True, augment=aa, seed=3, device="cuda"))
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b, strict=True))


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
    idx = D._balanced_subset(tr.labels, 200)
    assert idx is not None and torch.equal(sub.images, tr.images[idx])


# --------------------------------------------------------------------------- bad input


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and isinstance(exc.value, ValueError), msg
    return msg


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


def test_dataset_errors_are_value_errors() -> None:
    assert issubclass(DatasetNotFoundError, D.DatasetError)
    assert issubclass(D.DatasetError, ValueError)
    assert issubclass(D.ImageDecodeError, D.DatasetError)
    assert issubclass(D.DatasetOptionError, D.DatasetError)


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
    assert torch.equal(ds.images, D._decode_files(_write(tmp_path / "ok", full)))
    assert f"skipped 2 undecodable image(s) of 11 (first: {bad['truncated']})" in caplog.text
    assert not list(cache.rglob("*.pt"))  # never cached: the default still raises afterwards
    with pytest.raises(D.ImageDecodeError, match="0003.jpg"):
        load_dataset(src, "train", cache_dir=cache)
    sub = load_dataset(src, "train", cache_dir=cache, limit=6, skip_bad_images=True)
    assert len(sub) <= 6 and sub.images.shape[1:] == (3, 8, 8)


def _write(folder: Path, blobs: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:04d}.jpg" for i in range(len(blobs))]
    for path, blob in zip(paths, blobs, strict=True):
        path.write_bytes(blob)
    return paths


def test_imagenet_undecodable_image_is_named(imagenet_root: Path) -> None:
    bad = imagenet_root / "val" / "n01" / "0001.JPEG"
    bad.write_bytes(bad.read_bytes()[:300])
    va = load_dataset("imagenet", "test", root=imagenet_root)
    for workers in (0, 2):
        with pytest.raises(D.ImageDecodeError) as exc:
            list(BatchLoader(va, 6, train=False, num_workers=workers))
        assert one_line(exc).startswith(f"cannot decode image {bad} (")


def test_check_options() -> None:
    D.check_options("synthetic", {"train_size": 10, "test_size": 5, "mean": (0.1, 0.2, 0.3)})
    D.check_options("folder:/x", {"skip_bad_images": True, "std": [0.2, 0.2, 0.2]})
    D.check_options("cifar10", {"download": True})
    expected = (
        "source 'folder:/x' does not take option(s) ['test_size', 'train_size'] (it takes: "
        "['mean', 'skip_bad_images', 'std']); remove them from data_options.cifar10"
    )
    with pytest.raises(D.DatasetOptionError) as exc:
        D.check_options(
            "folder:/x", {"train_size": 1, "test_size": 2}, where="data_options.cifar10"
        )
    assert str(exc.value) == expected
    bad_values = [
        ("synthetic", {"train_size": 0}, "train_size=0 .* must be an integer >= 1"),
        ("synthetic", {"num_classes": 2.5}, "num_classes=2.5 .* integer >= 2"),
        ("synthetic", {"noise": "lots"}, "noise='lots' .* must be a number >= 0"),
        ("synthetic", {"mean": (0.5, 0.5)}, r"mean=\(0.5, 0.5\) .* must be 3 numbers"),
        ("tar:/x", {"std": (0.2, 0.0, 0.2)}, "must be 3 positive numbers"),
        ("tar:/x", {"skip_bad_images": "yes"}, "skip_bad_images='yes' .* true or false"),
    ]
    for source, options, pattern in bad_values:
        with pytest.raises(D.DatasetError, match=pattern) as exc2:
            D.check_options(source, options)
        assert one_line(exc2).endswith("fix it in data_options")


def test_load_dataset_refuses_foreign_options_before_any_work(tmp_path: Path) -> None:
    """The smoke preset's synthetic sizes with a folder: source (the folder need not exist)."""
    src = f"folder:{tmp_path / 'missing'}"
    with pytest.raises(D.DatasetOptionError, match=r"^source 'folder:.*' does not take option"):
        load_dataset(src, "train", train_size=512, test_size=128)
    with pytest.raises(D.DatasetOptionError, match=r"\['skip_bad_images'\]"):
        load_dataset("synthetic", "train", skip_bad_images=True)
    with pytest.raises(D.DatasetError, match="train_size=-3"):
        load_dataset("synthetic", "train", train_size=-3)


def test_num_classes_of_decodes_nothing_and_matches_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "t", {"a": 2, "b": 2, "c": 1, "d": 1})
    make_tree(tmp_path / "inet", {"n01": 1, "n02": 1}, splits=("train", "val"), fmt="JPEG")
    tar = make_tar(tmp_path / "t", tmp_path / "t.tar.gz", "top")
    sources = {
        f"folder:{tmp_path / 't'}": 4,
        f"tar:{tar}": 4,
        f"imagenet:{tmp_path / 'inet'}": 2,
        "synthetic-cifar100": 100,
    }
    with monkeypatch.context() as m:
        for name in ("_decode_one", "_decode_files", "_open_rgb", "_pil_decode"):
            m.setattr(D, name, lambda *a, **k: pytest.fail("decoded"), raising=False)
        counts = {s: num_classes_of(s, cache_dir=tmp_path / "c") for s in sources}
    assert counts == sources
    for s, n in sources.items():
        assert load_dataset(s, "test", cache_dir=tmp_path / "c").num_classes == n
    assert num_classes_of("synthetic", num_classes=4, train_size=10) == 4
    with pytest.raises(D.DatasetOptionError, match="train_size"):
        num_classes_of(f"folder:{tmp_path / 't'}", train_size=10)


def test_bad_source_paths_name_the_fix(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", {"a": 1})
    tar = make_tar(tmp_path / "t", tmp_path / "t.tar", "top")
    with pytest.raises(DatasetNotFoundError, match=rf"{tmp_path / 't'} is a folder.*'folder:"):
        load_dataset(f"tar:{tmp_path / 't'}", "train", cache_dir=tmp_path / "c")
    with pytest.raises(DatasetNotFoundError, match=rf"{tar} is a file.*use source 'tar:{tar}'"):
        load_dataset(f"folder:{tar}", "train", cache_dir=tmp_path / "c")
    with pytest.raises(DatasetNotFoundError, match="is a folder"):
        D.check_source(f"tar:{tmp_path / 't'}")
    with pytest.raises(D.DatasetError, match="needs a path"):
        load_dataset("folder:   ", "train")
    with pytest.raises(D.DatasetError, match="must be a string"):
        load_dataset(None, "train")  # type: ignore[arg-type]
    assert len(load_dataset(f" folder: {tmp_path / 't'} ", "train", cache_dir=tmp_path / "c")) == 1
    for limit in (-1, 0, 2.5, True, "10"):
        with pytest.raises(D.DatasetError, match="limit must be a positive integer"):
            load_dataset("synthetic", "train", limit=limit)  # type: ignore[arg-type]
