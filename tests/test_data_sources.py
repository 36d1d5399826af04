"""Tests for qac.data.sources: source strings, options, torchvision CIFAR and lazy ImageNet."""

from __future__ import annotations

import pickle
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

import qac.data.datasets as data_datasets
import qac.data.decode as data_decode
import qac.data.folders as data_folders
from qac import data as D
from qac.data import (
    AugmentConfig,
    BatchLoader,
    DatasetNotFoundError,
    ImageFolderDataset,
    load_dataset,
    num_classes_of,
)
from tests.data_helpers import make_tar, make_tree, one_line


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
        for module in (data_decode, data_folders, data_datasets):  # where decoders are used
            for name in ("_decode_one", "_decode_files", "_open_rgb", "_pil_decode"):
                m.setattr(module, name, lambda *a, **k: pytest.fail("decoded"), raising=False)
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


def test_imagenet_undecodable_image_is_named(imagenet_root: Path) -> None:
    bad = imagenet_root / "val" / "n01" / "0001.JPEG"
    bad.write_bytes(bad.read_bytes()[:300])
    va = load_dataset("imagenet", "test", root=imagenet_root)
    for workers in (0, 2):
        with pytest.raises(D.ImageDecodeError) as exc:
            list(BatchLoader(va, 6, train=False, num_workers=workers))
        assert one_line(exc).startswith(f"cannot decode image {bad} (")
