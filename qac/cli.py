"""``qac`` command line: train, evaluate, calibrate, info (each step of Algorithm 1).

Every command takes explicit input/output paths so that Snakemake rules can call it, writes its
outputs atomically, and on a bad input exits with status 2 and one line saying what to do.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from qac.checkpoint import CheckpointError, atomic_write_json, load_model
from qac.data import AugmentConfig, BatchLoader, DatasetNotFoundError, load_dataset
from qac.quant import InfiniteTimestepsError
from qac.runtime import resolve_device, set_threads, tune_allocator
from qac.train import ConfigError, TrainConfig, TrainingDivergedError

USER_ERRORS = (
    CheckpointError,
    DatasetNotFoundError,
    ConfigError,
    TrainingDivergedError,
    InfiniteTimestepsError,
    FileNotFoundError,
    ValueError,
    KeyError,
)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _parse_set(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (YAML values; dotted keys nest) into a dict."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _read_yaml(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of options")
    return data


def _data_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("data (defaults: what the checkpoint was trained on)")
    g.add_argument(
        "--data",
        help="dataset source: cifar10, cifar100, imagenet, folder:DIR, "
        "tar:FILE, synthetic-cifar10, ...",
    )
    g.add_argument("--data-root", help="directory holding the datasets (default: data)")
    g.add_argument("--cache-dir", help="cache for extracted/decoded images")
    g.add_argument("--limit", type=int, help="evaluate on a class-balanced subset of N images")
    g.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    g.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument(
        "--float64",
        action="store_true",
        help="evaluate in double precision (exact SNN == ANN comparisons)",
    )


def _dataset_for(args, payload: dict, split: str, limit: int | None):
    cfg = payload.get("config") or {}
    source = args.data or cfg.get("dataset")
    if not source:
        raise ConfigError("the checkpoint records no dataset: pass --data")
    options = cfg.get("data_options", {}) if not args.data else {}
    return load_dataset(
        source,
        split,
        root=args.data_root or cfg.get("data_root", "data"),
        cache_dir=args.cache_dir or cfg.get("cache_dir"),
        limit=limit,
        seed=cfg.get("data_seed", 0),
        **options,
    )


def _v0_option(text: str) -> str | float:
    if text in ("half", "zero"):
        return text
    try:
        return float(text)
    except ValueError as exc:
        raise ConfigError(f"--v0 takes half, zero or a number, got {text!r}") from exc


def _parse_snn_spec(spec: str) -> dict[str, Any]:
    """``POLICY[,k=K][,v0=V][,T=N][,cal][,f64]`` -> a setting dict (see ``qac evaluate -h``)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ConfigError("empty --snn setting")
    st: dict[str, Any] = {
        "policy": parts[0],
        "k": 1,
        "v0": "half",
        "cal": False,
        "f64": False,
        "timesteps": None,
    }
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key == "k" and value:
            st["k"] = int(value)
        elif key == "v0" and value:
            st["v0"] = _v0_option(value)
        elif key == "T" and value:
            st["timesteps"] = int(value)
        elif key in ("cal", "f64") and not value:
            st[key] = True
        else:
            raise ConfigError(
                f"bad --snn setting {spec!r}: use POLICY[,k=K][,v0=V][,T=N][,cal][,f64]"
            )
    return st


def _format_snn_spec(st: dict[str, Any]) -> str:
    text = str(st["policy"])
    if st["k"] != 1:
        text += f",k={st['k']}"
    if st["v0"] != "half":
        text += f",v0={st['v0']}"
    if st["timesteps"] is not None:
        text += f",T={st['timesteps']}"
    for flag in ("cal", "f64"):
        if st[flag]:
            text += f",{flag}"
    return text


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ConfigError(f"expected comma-separated integers, got {text!r}") from exc


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    return obj


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from qac.train import train

    values = _read_yaml(args.config)
    if args.config_json:
        try:
            values = _merge(values, json.loads(args.config_json))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json is not valid JSON: {exc}") from exc
    values = _merge(values, _parse_set(args.set or []))
    if args.no_progress:
        values["progress"] = False
    cfg = TrainConfig.from_dict(values)
    metrics = train(cfg, args.out, resume=not args.no_resume)
    print(
        f"trained {cfg.arch} on {cfg.dataset}: test accuracy {metrics['ann_acc']:.2f}% "
        f"-> {Path(args.out) / 'model.pt'}"
    )
    return 0


def _load_checkpoint_model(args):
    """(device, model in eval mode, checkpoint payload) for the evaluate/calibrate commands."""
    device = resolve_device(args.device)
    model, payload = load_model(args.checkpoint, arch=args.arch, map_location=device)
    return device, model.to(device).eval(), payload


def cmd_evaluate(args) -> int:
    from qac.evaluate import evaluate_ann, evaluate_snn, qcfs_sweep

    device, model, payload = _load_checkpoint_model(args)
    test = _dataset_for(args, payload, "test", args.limit)
    loader = BatchLoader(test, args.batch_size, train=False, device=device)
    progress = not args.no_progress
    dtype = torch.float64 if args.float64 else None
    result: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "spec": payload["spec"],
        "dataset": test.name if hasattr(test, "name") else args.data,
        "ann": evaluate_ann(model, loader, dtype=dtype, progress=progress),
    }
    neuron_state, calib_policy = None, None
    if args.calibration:
        calib = torch.load(args.calibration, map_location="cpu", weights_only=False)
        if not isinstance(calib, dict) or "state" not in calib:
            raise CheckpointError(f"{args.calibration} is not a 'qac calibrate' output")
        neuron_state = calib["state"]
        calib_policy = calib.get("config", {}).get("policy", "aver+aver")
    settings = [_parse_snn_spec(spec) for spec in args.snn or []]
    if args.policy or (neuron_state is not None and not settings):
        settings.insert(
            0,
            {
                "policy": args.policy or calib_policy,
                "k": args.k,
                "v0": _v0_option(args.v0),
                "cal": neuron_state is not None,
                "f64": args.float64,
                "timesteps": args.timesteps,
            },
        )
    if any(st["f64"] for st in settings) and dtype is None:
        result["ann"]["ann_acc_float64"] = evaluate_ann(
            model, loader, dtype=torch.float64, progress=progress
        )["ann_acc"]
    runs = []
    for st in settings:
        if st["cal"] and neuron_state is None:
            raise ConfigError("an --snn setting asks for 'cal' but no --calibration was given")
        run = evaluate_snn(
            model,
            loader,
            policy=st["policy"],
            v0=st["v0"],
            temporal_scale=st["k"],
            timesteps=st["timesteps"],
            neuron_state=neuron_state if st["cal"] else None,
            dtype=torch.float64 if st["f64"] else dtype,
            progress=progress,
        )
        run["setting"] = _format_snn_spec(st)
        runs.append(run)
    if runs:
        result["snn"] = runs
    if args.sweep:
        Ts = _int_list(args.sweep)
        result["qcfs_sweep"] = {
            "T": Ts,
            "qcfs": qcfs_sweep(model, loader, Ts, averaged=False, progress=progress),
            "qcfs+aver": qcfs_sweep(model, loader, Ts, averaged=True, progress=progress),
        }
    atomic_write_json(args.out, _jsonable(result))
    line = f"ANN {result['ann']['ann_acc']:.2f}%"
    for run in result.get("snn", []):
        line += f"; SNN {run['snn_acc']:.2f}% ({run['setting']}, avg T {run['avg_timesteps']:.2f})"
    print(line + f" -> {args.out}")
    return 0


def cmd_calibrate(args) -> int:
    from qac.calibrate import CalibrationConfig, calibrate
    from qac.evaluate import evaluate_snn
    from qac.io import atomic_path

    device, model, payload = _load_checkpoint_model(args)
    train_set = _dataset_for(args, payload, "train", args.samples)
    calib_loader = BatchLoader(
        train_set, 512, train=False, augment=AugmentConfig.none(), device=device
    )
    images = torch.cat([x for x, _ in calib_loader])
    cfg = CalibrationConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.calib_batch_size,
        v0_shape=args.v0_shape,
        policy=args.policy,
        progress=not args.no_progress,
    )
    result = calibrate(model, images, cfg)
    metrics = {k: v for k, v in result.items() if k != "state"}
    if args.eval_limit != 0:
        test = _dataset_for(args, payload, "test", args.eval_limit or args.limit)
        loader = BatchLoader(test, args.batch_size, train=False, device=device)
        before = evaluate_snn(model, loader, policy=args.policy, progress=not args.no_progress)
        after = evaluate_snn(
            model,
            loader,
            policy=args.policy,
            neuron_state=result["state"],
            progress=not args.no_progress,
        )
        metrics["snn_acc_before"] = before["snn_acc"]
        metrics["snn_acc_after"] = after["snn_acc"]
    with atomic_path(args.out) as tmp:
        torch.save({"state": result["state"], "config": result["config"]}, tmp)
    if args.metrics:
        atomic_write_json(args.metrics, _jsonable(metrics))
    note = " (no improvement: original state kept)" if result["reverted"] else ""
    line = f"calibration loss {result['loss_before']:.4g} -> {result['loss_after']:.4g}{note}"
    if "snn_acc_before" in metrics:
        line += (
            f"; SNN accuracy {metrics['snn_acc_before']:.2f}% -> {metrics['snn_acc_after']:.2f}%"
        )
    print(line)
    return 0


def cmd_info(args) -> int:
    from qac.layers import quantizer_summary
    from qac.stats import average_bits, average_timesteps

    model, payload = load_model(args.checkpoint)
    spec = payload["spec"]
    rows = quantizer_summary(model)
    if args.json:
        print(json.dumps(_jsonable({"spec": spec, "layers": rows}), indent=2))
        return 0
    print(
        f"{spec['arch']} ({spec['num_classes']} classes, width {spec['width']}), "
        f"activation {spec['activation']}"
    )
    print(f"{'layer':40s} {'T':>8s} {'bits':>6s} {'alpha':>8s}")
    for r in rows:
        T, bits = r["T"], r["bits"]
        T_txt = "INF" if T == "inf" else f"{T:g}"
        bits_txt = "INF" if bits == "inf" else f"{bits:.2f}"
        print(f"{r['layer']:40s} {T_txt:>8s} {bits_txt:>6s} {r['alpha']:8.4f}")
    if rows:
        avg_T, avg_b = average_timesteps(model), average_bits(model)
        print(f"average T {avg_T:.3f}, average bits {avg_b:.3f}")
    metrics = payload.get("metrics") or {}
    if metrics.get("ann_acc") is not None:
        print(f"test accuracy at the end of training: {metrics['ann_acc']:.2f}%")
    return 0


# --------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qac",
        description="QAC replication suite: train quantized ANNs, convert them to mixed-timestep "
        "SNNs, calibrate and evaluate (Algorithm 1 of the paper).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="quantization-aware training (Algorithm 1, lines 1-21)")
    p.add_argument("--config", help="YAML file of training options (see qac.train.TrainConfig)")
    p.add_argument("--config-json", help="training options as one JSON object (workflow use)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override an option, e.g. --set epochs=5 --set activation.case=4 (repeatable)",
    )
    p.add_argument("--out", required=True, help="output directory (model.pt, log.jsonl, ...)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing state.pt")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="ANN and SNN accuracy, timesteps, spikes, energy")
    p.add_argument("--checkpoint", required=True, help="model.pt written by 'qac train'")
    p.add_argument("--arch", help="fail unless the checkpoint holds this architecture")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument(
        "--policy",
        help="convert with this alignment policy (repl+aver, repl+trunc, "
        "aver+trunc, aver+aver, aver+aver+aver, qcfs, qcfs+aver)",
    )
    p.add_argument("--v0", default="half", help="initial membrane potential: half, zero, number")
    p.add_argument("--k", type=int, default=1, help="temporal scale k: every layer runs k*T_l")
    p.add_argument("--timesteps", type=int, help="run every layer for T steps (QCFS)")
    p.add_argument("--calibration", help="calibration file written by 'qac calibrate'")
    p.add_argument(
        "--snn",
        action="append",
        metavar="SPEC",
        help="an SNN setting to evaluate (repeatable): POLICY[,k=K][,v0=half|zero|X][,T=N]"
        "[,cal][,f64], e.g. 'aver+aver,k=2' or 'aver+aver,cal' (uses --calibration)",
    )
    p.add_argument(
        "--sweep",
        help="QCFS T sweep, e.g. 1,2,3,4,8,16,32,64 (with and without averaging alignment)",
    )
    _data_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="calibrate v0 and v_th (Sec. 4.4, Eqs. 15-17)")
    p.add_argument("--checkpoint", required=True, help="model.pt written by 'qac train'")
    p.add_argument("--arch", help="fail unless the checkpoint holds this architecture")
    p.add_argument("--out", required=True, help="calibration file to write (.pt)")
    p.add_argument("--metrics", help="JSON file for losses and accuracies before/after")
    p.add_argument("--policy", default="aver+aver", help="alignment policy of the SNN")
    p.add_argument(
        "--samples",
        type=int,
        default=1024,
        help="number of (unlabeled) training images used for calibration",
    )
    p.add_argument("--epochs", type=int, default=30, help="calibration epochs")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--calib-batch-size", type=int, default=64, help="calibration batch size")
    p.add_argument(
        "--v0-shape",
        default="channel",
        choices=["channel", "layer"],
        help="one initial membrane potential per channel (default) or per layer",
    )
    p.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        help="test images for the before/after accuracy (0 = skip; default: --limit)",
    )
    _data_args(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("info", help="print a checkpoint's per-layer T, bits and alpha")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    set_threads()
    tune_allocator()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        message = str(exc).strip().strip("'\"").splitlines()[0] if str(exc) else type(exc).__name__
        print(f"qac {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"qac {args.command}: interrupted (outputs are written atomically; rerun to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
