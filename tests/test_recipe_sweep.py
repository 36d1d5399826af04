"""scripts/recipe_sweep.py (the measurement behind the CPU recipe) end to end on synthetic data."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _sweep_module():
    spec = importlib.util.spec_from_file_location("recipe_sweep", ROOT / "scripts/recipe_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_pretrains_once_and_writes_one_row_per_variant(tmp_path):
    variants = [
        {"name": "a", "width": 0.25, "train": {"quantizer_lr": 1.0, "quantizer_weight_decay": 0}},
        {"name": "b", "width": 0.25, "act": {"name": "qcfs", "levels": 4, "theta": 8.0}},
    ]
    (tmp_path / "v.json").write_text(json.dumps(variants))
    argv = ["--data", "synthetic-cifar10", "--device", "cpu", "--out", str(tmp_path / "out"),
            "--variants", str(tmp_path / "v.json"), "--pretrain-epochs", "1",
            "--finetune-epochs", "1", "--batch-size", "64", "--no-bf16"]  # fmt: skip
    assert _sweep_module().main(argv) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "sweep.csv")))
    assert [r["name"] for r in rows] == ["a", "b"]
    assert len({r["pretrain_acc"] for r in rows}) == 1  # one float model for both variants
    assert len(list((tmp_path / "out").glob("relu-*"))) == 1
    a = rows[0]
    Ts = [float(T) for T in a["T"].split()]
    assert abs(float(a["mean_T"]) - sum(Ts) / len(Ts)) < 1e-9 and int(a["distinct_T"]) == len(
        set(Ts)
    )
    # averaging everywhere = the ANN, up to float32 rounding flipping a prediction on some CPUs
    assert abs(float(a["snn_aver_all"]) - float(a["ann_acc"])) <= 1.0
    metrics = json.loads((tmp_path / "out" / "a" / "metrics.json").read_text())
    assert metrics["init_from"]["path"].endswith("model.pt")  # fine-tuned from the float model
