"""Multi-process training (torchrun, DistributedDataParallel, gloo on the CPU).

Fast tests: per-rank sharding of BatchLoader gives back the single-process batches, and the
configuration checks. Slow tests launch ``torchrun --nproc-per-node 2 -m qac.cli train`` and compare
with one process in float64: same weights to 1e-10, a killed 2-process run resumes to the same
weights, and rank 0's lock keeps a second trainer out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from qac.checkpoint import directory_lock
from qac.data import AugmentConfig, BatchLoader, TensorImageDataset, load_dataset
from qac.distributed import GlobalBatchNorm, World, sync_batchnorm
from qac.train import ConfigError, _check_shards

ROOT = Path(__file__).resolve().parents[1]
# 100 images in batches of 31: 31, 31, 31, 7 -> shards of 15/16 and 3/4 images (uneven)
OPTIONS = {
    "arch": "resnet20",
    "width": 0.25,
    "dataset": "synthetic-cifar10",
    "data_options": {"train_size": 100, "test_size": 40},
    "batch_size": 31,
    "lr": 0.05,
    "float64": True,
    "device": "cpu",
    "augment": {"cutout": 8},
}
TOLERANCE = 1e-10  # float64: what summation order (all-reduce vs one batch) may change


def tiny_dataset(n: int = 23) -> TensorImageDataset:
    g = torch.Generator().manual_seed(0)
    return TensorImageDataset(
        images=torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g),
        labels=torch.arange(n) % 4,
        num_classes=4,
        classes=[f"c{i}" for i in range(4)],
        mean=(0.5, 0.4, 0.3),
        std=(0.2, 0.25, 0.3),
    )


def shards_concatenate(dataset, world_size: int, **kwargs) -> None:
    """The ranks' batches, concatenated, equal the single-process batches (epoch 1)."""
    whole = BatchLoader(dataset, 7, **kwargs)
    parts = [
        BatchLoader(dataset, 7, rank=r, world_size=world_size, **kwargs) for r in range(world_size)
    ]
    for loader in (whole, *parts):
        loader.set_epoch(1)
    for batch, *shards in zip(whole, *parts, strict=True):
        for i in (0, 1):
            assert torch.equal(batch[i], torch.cat([s[i] for s in shards]))
        sizes = [s[1].numel() for s in shards]
        assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_of_augmented_batches_make_the_single_process_batch(world_size):
    augment = AugmentConfig(crop_padding=2, flip=True, cutout=3, autoaugment=True)
    shards_concatenate(tiny_dataset(), world_size, train=True, augment=augment, seed=4)
    shards_concatenate(tiny_dataset(), world_size, train=False)


def test_shards_of_lazy_imagefolder_batches(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(5):
                arr = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / split / cls / f"{i}.JPEG")
    dataset = load_dataset("imagenet", "train", root=tmp_path)
    shards_concatenate(
        dataset, 2, train=True, augment=AugmentConfig(cutout=20), seed=2, num_workers=0
    )


def test_a_process_without_images_is_refused():
    _check_shards(100, 31, World(0, 2))  # last batch 7: 3 + 4 images
    with pytest.raises(ConfigError, match="3 processes but a training batch of 2"):
        _check_shards(95, 31, World(0, 3))  # last batch 2
    with pytest.raises(ConfigError, match="batch of 2"):
        _check_shards(100, 2, World(0, 4))


def test_batchnorm_is_unchanged_without_a_process_group():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert sync_batchnorm(model, torch.device("cpu")) is model
    assert not any(isinstance(m, GlobalBatchNorm) for m in model.modules())
    with pytest.raises(ValueError, match="rank must be in"):
        BatchLoader(tiny_dataset(), 4, train=False, rank=2, world_size=2)


# --------------------------------------------------------------------------------------------
# torchrun end to end (slow)
# --------------------------------------------------------------------------------------------
def qac_train(out: Path, epochs: int, processes: int, **options) -> subprocess.Popen:
    """``qac train`` of OPTIONS (and ``options``), under torchrun when ``processes`` > 1 (own
    process group)."""
    config = json.dumps({**OPTIONS, "epochs": epochs, **options})
    args = ["-m", "qac.cli", "train", "--config-json", config, "--out", str(out), "--no-progress"]
    if processes > 1:
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
        args = launch + args
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a kill reaches every rank
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["state_dict"]


def max_difference(a: Path, b: Path) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(t.dtype == torch.float64 for t in wa.values() if t.is_floating_point())
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)


@pytest.fixture(scope="module")
def single_process(tmp_path_factory) -> Path:
    """One process, 3 epochs: the reference."""
    out = tmp_path_factory.mktemp("single")
    finish(qac_train(out, 3, 1))
    return out


@pytest.mark.slow
def test_two_processes_train_the_single_process_weights(single_process, tmp_path):
    out = finish(qac_train(tmp_path, 3, 2))
    assert out.count("trained resnet20") == 1  # rank 0 alone reports
    assert max_difference(single_process / "model.pt", tmp_path / "model.pt") < TOLERANCE
    logs = [
        [json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()]
        for d in (single_process, tmp_path)
    ]
    for one, two in zip(*logs, strict=True):
        assert one["train_loss"] == pytest.approx(two["train_loss"], abs=1e-12)
        assert (one["train_acc"], one["test_acc"]) == (two["train_acc"], two["test_acc"])


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_weights(single_process, tmp_path):
    proc = qac_train(tmp_path, 3, 2)
    runs = tmp_path / "runs"
    deadline = time.time() + 90
    while not list(runs.glob("*/log.jsonl")):  # written right after the first epoch's state.pt
        assert proc.poll() is None and time.time() < deadline, "run ended before its first epoch"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (state,) = runs.glob("*/state.pt")
    assert (
        torch.load(state, weights_only=False)["epoch"] < 2 and not (tmp_path / "model.pt").exists()
    )
    finish(qac_train(tmp_path, 3, 2))
    assert not state.exists()
    assert max_difference(single_process / "model.pt", tmp_path / "model.pt") < TOLERANCE
    history = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]


@pytest.mark.slow
def test_percentile_start_of_two_processes_is_the_single_process_one(tmp_path):
    """init_threshold_percentile reads the whole first global batch (every rank's slice), so
    the starting thresholds, and the weights after training, do not depend on the processes."""
    finish(qac_train(tmp_path / "relu", 1, 1, activation={"name": "relu"}))
    start = {"init_from": str(tmp_path / "relu" / "model.pt"), "init_threshold_percentile": 90}
    finish(qac_train(tmp_path / "one", 1, 1, **start))
    finish(qac_train(tmp_path / "two", 1, 2, **start))
    assert max_difference(tmp_path / "one" / "model.pt", tmp_path / "two" / "model.pt") < TOLERANCE


@pytest.mark.slow
def test_rank_zero_lock_keeps_a_second_trainer_out(tmp_path):
    with directory_lock(tmp_path):
        proc = qac_train(tmp_path, 1, 2)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0 and f"another qac train (pid {os.getpid()})" in out
    assert not (tmp_path / "runs").exists()
