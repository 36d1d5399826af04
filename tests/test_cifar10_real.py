"""End to end on the real CIFAR-10 (JPEG copy): train a case-4 ResNet-20 briefly, convert, compare.

Skipped, with the reason, only when the archive is absent. Uses a class-balanced 10,000-image
training subset and 2,000 test images so it runs in a few minutes on 2 cores (bf16 training).
The JPEG copy costs about 2-3 % accuracy against the PNG originals.
"""

import os
from pathlib import Path

import pytest
import torch

from qac.checkpoint import load_model
from qac.data import BatchLoader, load_dataset
from qac.evaluate import evaluate_ann, evaluate_snn
from qac.train import TrainConfig, train

ARCHIVE = Path(
    os.environ.get(
        "QAC_CIFAR10_TAR",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-jpeg.tar.gz",
    )
).resolve()


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"CIFAR-10 archive not found at {ARCHIVE}")
def test_resnet20_case4_on_real_cifar10_converts_exactly(tmp_path_factory):
    cache = Path(os.environ.get("QAC_CACHE_DIR", tmp_path_factory.mktemp("cache")))
    out = tmp_path_factory.mktemp("cifar10_run")
    cfg = TrainConfig.from_dict(
        {
            "arch": "resnet20",
            "dataset": f"tar:{ARCHIVE}",
            "cache_dir": str(cache),
            "train_limit": 10000,
            "test_limit": 2000,
            "epochs": 3,
            "batch_size": 128,
            "lr": 0.1,
            "warmup_epochs": 0,
            "bf16": True,
            "channels_last": True,
            "activation": {"name": "qac", "case": 4, "alpha": 8.0, "timesteps": 4},
            "progress": False,
        }
    )
    metrics = train(cfg, out)
    print(f"\nreal CIFAR-10 ResNet-20 case 4, 3 epochs on 10k images: {metrics['ann_acc']:.2f}%")
    assert metrics["ann_acc"] > 35.0  # chance is 10 %
    model, _ = load_model(out / "model.pt")
    test = load_dataset(f"tar:{ARCHIVE}", "test", cache_dir=cache, limit=2000)
    loader = BatchLoader(test, 250, train=False)
    ann = evaluate_ann(model, loader, dtype=torch.float64, progress=False)
    snn = evaluate_snn(model, loader, policy="aver+aver+aver", dtype=torch.float64, progress=False)
    print(
        f"ANN {ann['ann_acc']:.2f}%  SNN(aver+aver+aver) {snn['snn_acc']:.2f}%  "
        f"avg T {snn['avg_timesteps']:.2f}"
    )
    assert snn["snn_acc"] == ann["ann_acc"]
    assert max(snn["conversion_error"].values()) < 1e-9
