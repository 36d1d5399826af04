"""``qac calibrate``: calibrate v0 and v_th of the converted SNN (Sec. 4.4, Eqs. 15-17)."""

from __future__ import annotations

from typing import Any

import torch

from qac.checkpoint import atomic_write_json
from qac.commands import options as opt
from qac.commands.inputs import (
    check_output,
    dataset_for,
    jsonable,
    load_checkpoint_model,
    require_snn,
)
from qac.data import AugmentConfig, BatchLoader
from qac.evaluate import model_dtype


def add_parser(sub) -> None:
    """Add ``calibrate`` to the subcommands ``sub``."""
    p = sub.add_parser("calibrate", help="calibrate v0 and v_th (Sec. 4.4, Eqs. 15-17)")
    opt.checkpoint_args(p, "calibration file to write (.pt)")
    p.add_argument("--metrics", help="JSON file for losses and accuracies before/after")
    p.add_argument(
        "--policy", type=opt.policy, default="aver+aver", help="alignment policy of the SNN"
    )
    p.add_argument(
        "--samples",
        type=opt.int_at_least(1),
        default=1024,
        help="number of (unlabeled) images used for calibration",
    )
    p.add_argument("--epochs", type=opt.int_at_least(0), default=30, help="calibration epochs")
    p.add_argument(
        "--lr", type=opt.positive_float, default=1e-3, help="learning rate of the optimizer"
    )
    opt.choice_arg(
        p,
        "--optimizer",
        ["adam", "sgd"],
        "adam (default) or sgd: Algorithm 1's plain gradient step (lines 26-32)",
    )
    opt.choice_arg(
        p,
        "--source",
        ["train", "test", "noise"],
        "unlabeled calibration images: training split (default), test split, or "
        "standard-normal noise (no dataset)",
    )
    p.add_argument(
        "--no-revert",
        action="store_true",
        help="keep the calibrated state even when it did not lower the calibration loss",
    )
    p.add_argument(
        "--calib-batch-size", type=opt.int_at_least(1), default=64, help="calibration batch size"
    )
    opt.choice_arg(
        p,
        "--v0-shape",
        ["channel", "layer"],
        "one initial membrane potential per channel (default) or per layer",
    )
    p.add_argument(
        "--eval-limit",
        type=opt.int_at_least(0),
        default=None,
        help="test images for the before/after accuracy (0 = skip; default: --limit)",
    )
    opt.data_args(p)
    p.set_defaults(func=run)


def _accuracy_before_after(args, payload, device, model, trained_state) -> dict[str, float]:
    """SNN test accuracy without and with the calibrated state (``--eval-limit`` images)."""
    from qac.evaluate import evaluate_snn

    test = dataset_for(args, payload, "test", args.eval_limit or args.limit)
    loader = BatchLoader(test, args.batch_size, train=False, device=device)
    before = evaluate_snn(model, loader, policy=args.policy, progress=not args.no_progress)
    after = evaluate_snn(
        model,
        loader,
        policy=args.policy,
        neuron_state=trained_state,  # even when reverted: what it would give
        progress=not args.no_progress,
    )
    return {"snn_acc_before": before["snn_acc"], "snn_acc_after": after["snn_acc"]}


def _write_outputs(args, result: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The calibration file (``{state, config, record}``) and, with --metrics, its JSON."""
    from qac.io import atomic_path

    with atomic_path(args.out) as tmp:
        record = {k: v for k, v in metrics.items() if k not in ("config", "history")}
        torch.save({"state": result["state"], "config": result["config"], "record": record}, tmp)
    if args.metrics:
        atomic_write_json(args.metrics, jsonable(metrics))


def run(args) -> int:
    from qac.calibrate import CalibrationConfig, calibrate, calibration_images

    check_output(args.out, "--out")
    check_output(args.metrics, "--metrics")
    device, model, payload = load_checkpoint_model(args)
    require_snn(model, args, "calibration")

    def load_split(split: str, n: int) -> torch.Tensor:
        data = dataset_for(args, payload, split, n)
        loader = BatchLoader(data, 512, train=False, augment=AugmentConfig.none(), device=device)
        return torch.cat([x for x, _ in loader])

    images = calibration_images(args.source, args.samples, load_split)
    dtype = torch.float64 if args.float64 else model_dtype(model)  # a float64 model stays so
    model, images = model.to(dtype), images.to(dtype)
    cfg = CalibrationConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.calib_batch_size,
        v0_shape=args.v0_shape,
        policy=args.policy,
        optimizer=args.optimizer,
        revert_if_worse=not args.no_revert,
        progress=not args.no_progress,
    )
    result = calibrate(model, images, cfg)
    metrics = {k: v for k, v in result.items() if k not in ("state", "trained_state")}
    metrics["source"] = args.source
    if args.eval_limit != 0:
        metrics.update(
            _accuracy_before_after(args, payload, device, model, result["trained_state"])
        )
    _write_outputs(args, result, metrics)
    note = " (no improvement: original state kept)" if result["reverted"] else ""
    line = f"calibration loss {result['loss_before']:.4g} -> {result['loss_after']:.4g}{note}"
    if "snn_acc_before" in metrics:
        line += (
            f"; SNN accuracy {metrics['snn_acc_before']:.2f}% -> {metrics['snn_acc_after']:.2f}%"
        )
    print(line)
    return 0
