"""What moves the learned timesteps: ReLU pretraining, then short QAT fine-tunes, one per variant.

Used to choose the CPU scale's recipe (issue #11, docs/assumptions.md "CPU scale recipe"); it is a
measurement tool, not part of the workflow. For each architecture it pretrains one float (ReLU)
model, then fine-tunes each variant (any ``qac train`` options, e.g. the quantizer parameters'
learning rate and weight decay, or activation overrides such as the initial alpha) from it and
evaluates the SNN with the main policy (``aver+aver``) and with averaging at every boundary.
One CSV row per variant is appended as soon as it finishes (ANN accuracy, per-layer T, mean T,
number of distinct T, SNN accuracies, seconds)::

    python scripts/recipe_sweep.py --data tar:../shared/data/cifar10-jpeg.tar.gz --device cpu \\
        --out /tmp/sweep --variants scripts/recipe_variants_cpu.json

``--variants`` is a JSON list of objects ``{"name": ..., "arch": "resnet20", "width": 1.0,
"act": {...activation overrides...}, "train": {...TrainConfig overrides...}}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

from qac.cli import main as qac_main
from qac.runtime import prepare_process
from qac.train import train
from qac.trainconfig import TrainConfig

MAIN, AVER_ALL = "aver+aver", "aver+aver+aver"  # the main policy; averaging at every boundary
FIELDS = [
    "name", "arch", "width", "pretrain_acc", "ann_acc", "snn_main", "snn_aver_all", "mean_T",
    "distinct_T", "T", "alpha", "train_s", "eval_s", "options",
]  # fmt: skip


def _base(args: argparse.Namespace, arch: str, width: float) -> dict[str, Any]:
    return {
        "arch": arch,
        "width": width,
        "dataset": args.data,
        "data_root": args.data_root,
        "cache_dir": args.cache_dir,
        "batch_size": args.batch_size,
        "bf16": args.bf16,
        "channels_last": True,
        "device": args.device,
        "progress": False,
        "augment": {"crop_padding": 4, "flip": True},
    }


def pretrain(args: argparse.Namespace, arch: str, width: float, out: Path) -> tuple[Path, float]:
    """The ReLU model of ``arch`` at ``width`` (trained once per sweep directory)."""
    cfg = {
        **_base(args, arch, width),
        "activation": {"name": "relu"},
        "epochs": args.pretrain_epochs,
        "lr": args.pretrain_lr,
        "warmup_epochs": 1,
        "label_smoothing": 0.1,
        "weight_decay": 5e-4,
    }
    directory = out / f"relu-{arch}-{width}"
    metrics = train(TrainConfig.from_dict(cfg), directory)
    return directory / "model.pt", float(metrics["ann_acc"])


def evaluate(args: argparse.Namespace, model: Path) -> dict[str, Any]:
    result = model.with_name("eval.json")
    argv = ["evaluate", "--checkpoint", str(model), "--out", str(result), "--snn", MAIN,
            "--snn", AVER_ALL, "--device", args.device, "--no-progress",
            "--batch-size", "500"]  # fmt: skip
    if args.cache_dir:
        argv += ["--cache-dir", args.cache_dir]
    if args.eval_limit:
        argv += ["--limit", str(args.eval_limit)]
    if qac_main(argv) != 0:
        raise RuntimeError(f"evaluation of {model} failed")
    return json.loads(result.read_text())


def finetune_config(args: argparse.Namespace, v: dict[str, Any], init: Path) -> TrainConfig:
    """The fine-tune of variant ``v`` from the float model ``init`` (QAC case 4 unless ``v``
    names another activation)."""
    arch, width = v.get("arch", "resnet20"), float(v.get("width", 1.0))
    activation = {"name": "qac", "case": 4, "alpha": 4.0, "timesteps": 4}
    if "name" in v.get("act", {}):  # another quantizer (e.g. QCFS): its options alone
        activation = {}
    activation.update(v.get("act", {}))
    cfg = {
        **_base(args, arch, width),
        "activation": activation,
        "init_from": str(init),
        "epochs": args.finetune_epochs,
        "lr": args.finetune_lr,
        "warmup_epochs": 0,
        "label_smoothing": 0.1,
        **v.get("train", {}),
    }
    return TrainConfig.from_dict(cfg)


def run_variant(args: argparse.Namespace, v: dict[str, Any], init: Path, acc: float) -> dict:
    arch, width = v.get("arch", "resnet20"), float(v.get("width", 1.0))
    directory = args.out / v["name"]
    t0 = time.time()
    metrics = train(finetune_config(args, v, init), directory)
    train_s = time.time() - t0
    t0 = time.time()
    result = evaluate(args, directory / "model.pt")
    Ts = [layer["T"] for layer in metrics["layers"]]
    snn = {run["setting"]: run for run in result["snn"]}
    return {
        "name": v["name"],
        "arch": arch,
        "width": width,
        "pretrain_acc": acc,
        "ann_acc": result["ann"]["ann_acc"],
        "snn_main": snn[MAIN]["snn_acc"],
        "snn_aver_all": snn[AVER_ALL]["snn_acc"],
        "mean_T": result["ann"]["avg_timesteps"],  # as the tables and the scale's floors
        "distinct_T": len({round(float(T), 6) for T in Ts}),
        "T": " ".join(str(T) for T in Ts),
        "alpha": " ".join(f"{layer['alpha']:.3g}" for layer in metrics["layers"]),
        "train_s": round(train_s, 1),
        "eval_s": round(time.time() - t0, 1),
        "options": json.dumps({"act": v.get("act", {}), "train": v.get("train", {})}),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="tar:../shared/data/cifar10-jpeg.tar.gz")
    p.add_argument("--data-root", default="data")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--variants", type=Path, required=True)
    p.add_argument("--pretrain-epochs", type=int, default=15)
    p.add_argument("--pretrain-lr", type=float, default=0.2)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--finetune-lr", type=float, default=0.02)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--eval-limit", type=int, default=None)
    p.add_argument("--no-bf16", dest="bf16", action="store_false")
    p.add_argument(
        "--pretrained",
        action="append",
        default=[],
        metavar="ARCH:WIDTH=MODEL.PT",
        help="use this ReLU model (e.g. the workflow's relu checkpoint) instead of pretraining",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not prepare_process("recipe_sweep"):  # QAC_THREADS (else torch takes every core)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    table = args.out / "sweep.csv"
    pretrained: dict[tuple[str, float], tuple[Path, float]] = {}
    for item in args.pretrained:
        key, path = item.split("=", 1)
        arch, width = key.split(":")
        metrics = json.loads(Path(path).with_name("metrics.json").read_text())
        pretrained[(arch, float(width))] = (Path(path), float(metrics["ann_acc"]))
    for v in json.loads(args.variants.read_text()):
        key = (v.get("arch", "resnet20"), float(v.get("width", 1.0)))
        try:
            if key not in pretrained:
                t0 = time.time()
                pretrained[key] = pretrain(args, *key, args.out)
                print(f"[sweep] pretrained {key}: {pretrained[key][1]:.2f}% "
                      f"in {time.time() - t0:.0f} s", flush=True)  # fmt: skip
            row = run_variant(args, v, *pretrained[key])
        except Exception as exc:  # noqa: BLE001 -- one broken variant must not end the sweep
            print(f"[sweep] {v['name']} failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        new = not table.exists()
        with open(table, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        print(f"[sweep] {json.dumps(row)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
