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
    evaluation = json.loads((tmp_path / "out" / "a" / "eval.json").read_text())
    assert float(a["mean_T"]) == evaluation["ann"]["avg_timesteps"]  # the floors' mean T
    snn = {run["setting"]: run["snn_acc"] for run in evaluation["snn"]}
    assert float(a["snn_main"]) == snn["aver+aver"]
    assert float(a["snn_aver_all"]) == snn["aver+aver+aver"]
    layers = json.loads((tmp_path / "out" / "a" / "metrics.json").read_text())["layers"]
    assert a["T"].split() == [str(layer["T"]) for layer in layers]
    assert int(a["distinct_T"]) == len({float(layer["T"]) for layer in layers})
    # averaging everywhere = the ANN, up to float32 rounding flipping a prediction on some CPUs
    assert abs(float(a["snn_aver_all"]) - float(a["ann_acc"])) <= 1.0
    metrics = json.loads((tmp_path / "out" / "a" / "metrics.json").read_text())
    assert metrics["init_from"]["path"].endswith("model.pt")  # fine-tuned from the float model


def test_shipped_variants_are_valid_and_include_the_cpu_recipe():
    """Every variant of scripts/recipe_variants_cpu.json is a valid fine-tune, and one of them is
    the cpu preset's ResNet-20 case-4 fine-tune (the measurement docs/assumptions.md cites)."""
    from qac.workflow import PRESET_DIR, Model, resolve_config, train_options

    sweep = _sweep_module()
    args = sweep.build_parser().parse_args(["--out", "x", "--variants", "v.json"])
    variants = json.loads((ROOT / "scripts/recipe_variants_cpu.json").read_text())
    configs = {v["name"]: sweep.finetune_config(args, v, Path("relu.pt")) for v in variants}
    assert len(configs) == len(variants)  # names are unique
    cfg = resolve_config({"scale": "cpu"}, PRESET_DIR)
    preset = train_options(cfg, Model("cifar10", "resnet20", "qac-c4"))
    recipe = ["epochs", "lr", "weight_decay", "quantizer_lr", "quantizer_weight_decay",
              "init_threshold_percentile", "warmup_epochs", "label_smoothing", "batch_size",
              "bf16", "channels_last"]  # fmt: skip
    matching = [
        name
        for name, c in configs.items()
        if all(getattr(c, k) == preset[k] for k in recipe) and c.activation == preset["activation"]
    ]
    assert matching, f"no variant matches the cpu preset's fine-tune {[preset[k] for k in recipe]}"
