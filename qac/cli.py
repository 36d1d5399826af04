"""``qac`` command line: train, evaluate, calibrate, info (each step of Algorithm 1).

Every command takes explicit input/output paths so that Snakemake rules can call it, writes its
outputs atomically, and on a bad input exits with status 2 and one line saying what to do.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from qac.align import AlignmentPolicy
from qac.checkpoint import CheckpointError, atomic_write_json, load_model
from qac.convert import quantizers
from qac.data import AugmentConfig, BatchLoader, DatasetNotFoundError, load_dataset, num_classes_of
from qac.experiments import Model, SNNSetting
from qac.quant import InfiniteTimestepsError
from qac.runtime import DeviceError, resolve_device, set_threads, tune_allocator
from qac.train import ConfigError, TrainConfig, TrainingDivergedError
from qac.workflow import load_yaml

USER_ERRORS = (
    CheckpointError,
    DatasetNotFoundError,
    ConfigError,
    DeviceError,
    TrainingDivergedError,
    InfiniteTimestepsError,
    FileNotFoundError,
    ValueError,
    KeyError,
)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _yaml(text: str, what: str) -> Any:
    """``text`` read as YAML (every float notation a number); a syntax error is one line."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what} is not valid YAML{where}: {problem}") from exc


def _parse_set(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs (YAML values; dotted keys nest) into a dict."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not all(key.split(".")):
            raise ConfigError(f"--set expects key=value (e.g. epochs=5), got {item!r}")
        value = _yaml(raw, f"--set {item!r}") if raw != "" else None
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} was given a value, not options")
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
    data = _yaml(p.read_text(), f"config file {p}") or {}
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
    g.add_argument(
        "--limit", type=_int_at_least(1), help="evaluate on a class-balanced subset of N images"
    )
    g.add_argument("--batch-size", type=_int_at_least(1), default=256, help="evaluation batch size")
    g.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    g.add_argument(
        "--float64",
        action="store_true",
        help="evaluate in double precision (exact SNN == ANN comparisons)",
    )


def _dataset_for(args, payload: dict, split: str, limit: int | None):
    """The split to evaluate/calibrate on; its classes must be the checkpoint's (checked from
    the class folders before any image is read, and again on the loaded dataset)."""
    cfg = payload.get("config") or {}
    source = args.data or cfg.get("dataset")
    if not source:
        raise ConfigError("the checkpoint records no dataset: pass --data")
    options = cfg.get("data_options", {}) if not args.data else {}
    where = {
        "root": args.data_root or cfg.get("data_root", "data"),
        "cache_dir": args.cache_dir or cfg.get("cache_dir"),
    }
    if not str(source).strip().lower().startswith("imagenet"):  # counts 1000 for any ImageNet
        _check_classes(args, payload, source, num_classes_of(source, **where, **options))
    data = load_dataset(
        source, split, limit=limit, seed=cfg.get("data_seed", 0), **where, **options
    )
    _check_classes(args, payload, source, data.num_classes)
    return data


def _check_classes(args, payload: dict, source: str, found: int) -> None:
    want = payload["spec"]["num_classes"]
    if found != want:
        trained = (payload.get("config") or {}).get("dataset") or "the training data"
        raise ConfigError(
            f"checkpoint {args.checkpoint} predicts {want} classes but dataset {source} has "
            f"{found}: use the dataset it was trained on (--data {trained})"
        )


def _check_output(path: str | None, flag: str, *, directory: bool = False) -> None:
    """Fail before any work when ``path`` cannot be written (a file where a directory must be,
    or the reverse, or a file in the way of its parent directories)."""
    if not path:
        return
    p = Path(path)
    want = "directory" if directory else "file"
    if p.exists() and p.is_dir() != directory:
        kind = "directory" if p.is_dir() else "file"
        raise ConfigError(
            f"{flag} {p} is a {kind}, but a {want} is written there: pass a {want} path"
        )
    blocker = next((q for q in p.parents if q.exists() and not q.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"{flag} {p}: {blocker} is a file, not a directory: pass another path")


# Argument types: argparse turns their ArgumentTypeError into one line naming the option, so
# every value is checked before a checkpoint or dataset is read.
def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _policy(text: str) -> str:
    """An alignment policy name that :meth:`qac.align.AlignmentPolicy.parse` knows."""
    try:
        AlignmentPolicy.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _v0_option(text: str) -> str | float:
    if text in ("half", "zero"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"v0 takes half, zero or a number, got {text!r}") from None


def _timesteps_list(text: str) -> list[int]:
    """``1,2,4`` -> [1, 2, 4] (each >= 1, at least one)."""
    values = [_int_at_least(1)(x.strip()) for x in text.split(",") if x.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def _snn_setting(text: str) -> SNNSetting:
    """``--snn`` value: :meth:`qac.experiments.SNNSetting.parse` (see ``qac evaluate -h``)."""
    try:
        return SNNSetting.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _model_id(text: str) -> Model:
    """``--model-id`` value: ``<dataset>/<arch>/<act>`` (:meth:`qac.experiments.Model.parse`)."""
    try:
        return Model.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    from qac.distributed import world_from_env
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
    try:
        cfg = TrainConfig.from_dict(values)
    except TypeError as exc:  # a value of the wrong type that TrainConfig did not name
        raise ConfigError(f"bad training option value: {exc}") from exc
    _check_output(args.out, "--out", directory=True)
    metrics = train(cfg, args.out, resume=not args.no_resume)
    if world_from_env().main:  # under torchrun: one line, not one per process
        print(
            f"trained {cfg.arch} on {cfg.dataset}: test accuracy {metrics['ann_acc']:.2f}% "
            f"-> {Path(args.out) / 'model.pt'}"
        )
    return 0


def _load(path: str, arch: str | None = None, device: torch.device | str = "cpu"):
    """(model, payload) of a 'qac train' checkpoint, with one-line errors for wrong files."""
    p = Path(path)
    if p.is_dir():
        raise CheckpointError(
            f"--checkpoint {p} is a directory: pass the file, e.g. {p / 'model.pt'}"
        )
    try:
        return load_model(p, arch=arch, map_location=device)
    except KeyError as exc:
        raise CheckpointError(
            f"checkpoint {p} has no {_key(exc)}: it was not written by 'qac train'"
        ) from exc


def _key(exc: KeyError) -> str:
    return repr(exc.args[0]) if exc.args else "key"


def _require_snn(model, args, what: str) -> None:
    """Conversion needs quantized activations: fail before any data is read."""
    if next(iter(quantizers(model)), None) is None:
        raise ConfigError(
            f"checkpoint {args.checkpoint} has no QAC/QCFS activations (ReLU model), so it "
            f"cannot become an SNN: drop {what}"
        )


def _load_checkpoint_model(args):
    """(device, model in eval mode, checkpoint payload) for the evaluate/calibrate commands."""
    device = resolve_device(args.device)
    model, payload = _load(args.checkpoint, args.arch, device)
    if next(model.parameters()).dtype == torch.float64:  # trained in double: stay in double
        args.float64 = True
    return device, model.to(device).eval(), payload


def _load_calibration(path: str) -> dict[str, Any]:
    """A 'qac calibrate' output (``{state, config, record}``), one line when it is not one."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(
            f"calibration file {p} does not exist: write it with 'qac calibrate --out {p}'"
        )
    try:
        calib = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # a text, truncated or foreign file: torch raises many kinds
        raise CheckpointError(
            f"{p} is not a 'qac calibrate' output ({type(exc).__name__}): pass the --out file "
            "of 'qac calibrate'"
        ) from exc
    if not isinstance(calib, dict) or not isinstance(calib.get("state"), dict):
        raise CheckpointError(
            f"{p} is not a 'qac calibrate' output: pass the --out file of 'qac calibrate'"
        )
    return calib


def _snn_settings(args, calib: dict[str, Any] | None) -> list[SNNSetting]:
    """The --snn settings, preceded by the one --policy/--calibration describe."""
    settings = list(args.snn or [])
    if args.policy or (calib is not None and not settings):
        policy = args.policy or (calib.get("config") or {}).get("policy", "aver+aver")
        settings.insert(
            0,
            SNNSetting(
                policy,
                k=args.k,
                v0=args.v0,
                timesteps=args.timesteps,
                cal=calib is not None,
                f64=args.float64,
            ),
        )
    if calib is None and any(st.cal for st in settings):
        raise ConfigError("an --snn setting asks for 'cal' but no --calibration FILE was given")
    return settings


def _qcfs_sweep_result(
    model, loader, Ts: list[int], progress: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``({"T", "qcfs": {T: acc}, "qcfs+aver": {T: acc}}, {method: {T: per-image record}})``."""
    from qac.evaluate import qcfs_sweep_records

    accuracies: dict[str, Any] = {"T": Ts}
    per_image: dict[str, Any] = {}
    for key, averaged in (("qcfs", False), ("qcfs+aver", True)):
        records = qcfs_sweep_records(model, loader, Ts, averaged=averaged, progress=progress)
        accuracies[key] = {T: rec.accuracy for T, rec in records.items()}
        per_image[key] = {T: rec.to_json() for T, rec in records.items()}
    return accuracies, per_image


def cmd_evaluate(args) -> int:
    from qac.evaluate import check_neuron_state, evaluate_ann, evaluate_snn, write_evaluation

    _check_output(args.out, "--out")
    calib = _load_calibration(args.calibration) if args.calibration else None
    device, model, payload = _load_checkpoint_model(args)
    settings = _snn_settings(args, calib)
    if settings or args.sweep:
        _require_snn(model, args, "--snn/--policy/--calibration/--sweep")
    neuron_state = calib["state"] if calib is not None else None
    if neuron_state is not None:
        check_neuron_state(model, neuron_state)
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
    if calib is not None and calib.get("record"):  # loss/accuracy before and after, source
        result["calibration"] = calib["record"]
    if any(st.f64 for st in settings) and dtype is None:
        result["ann"]["ann_acc_float64"] = evaluate_ann(
            model, loader, dtype=torch.float64, progress=progress
        )["ann_acc"]
    runs = [
        evaluate_snn(
            model,
            loader,
            policy=st.policy,
            v0=st.v0,
            temporal_scale=st.k,
            timesteps=st.timesteps,
            neuron_state=neuron_state if st.cal else None,
            dtype=torch.float64 if st.f64 else dtype,
            progress=progress,
        )
        for st in settings
    ]
    if runs:
        result["snn"] = runs
    if args.sweep:
        result["qcfs_sweep"], result["qcfs_sweep_per_image"] = _qcfs_sweep_result(
            model, loader, args.sweep, progress
        )
    write_evaluation(args.out, result, settings, model=args.model_id)
    line = f"ANN {result['ann']['ann_acc']:.2f}%"
    for st, run in zip(settings, runs, strict=True):
        line += f"; SNN {run['snn_acc']:.2f}% ({st}, avg T {run['avg_timesteps']:.2f})"
    print(line + f" -> {args.out}")
    return 0


def cmd_calibrate(args) -> int:
    from qac.calibrate import CalibrationConfig, calibrate, calibration_images
    from qac.evaluate import evaluate_snn
    from qac.io import atomic_path

    _check_output(args.out, "--out")
    _check_output(args.metrics, "--metrics")
    device, model, payload = _load_checkpoint_model(args)
    _require_snn(model, args, "calibration")

    def load_split(split: str, n: int) -> torch.Tensor:
        data = _dataset_for(args, payload, split, n)
        loader = BatchLoader(data, 512, train=False, augment=AugmentConfig.none(), device=device)
        return torch.cat([x for x, _ in loader])

    images = calibration_images(args.source, args.samples, load_split)
    if args.float64:
        model, images = model.to(torch.float64), images.to(torch.float64)
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
        test = _dataset_for(args, payload, "test", args.eval_limit or args.limit)
        loader = BatchLoader(test, args.batch_size, train=False, device=device)
        before = evaluate_snn(model, loader, policy=args.policy, progress=not args.no_progress)
        after = evaluate_snn(
            model,
            loader,
            policy=args.policy,
            neuron_state=result["trained_state"],  # even when reverted: what it would give
            progress=not args.no_progress,
        )
        metrics["snn_acc_before"] = before["snn_acc"]
        metrics["snn_acc_after"] = after["snn_acc"]
    with atomic_path(args.out) as tmp:
        record = {k: v for k, v in metrics.items() if k not in ("config", "history")}
        torch.save({"state": result["state"], "config": result["config"], "record": record}, tmp)
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

    model, payload = _load(args.checkpoint)
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


def cmd_report(args) -> int:
    """``qac report ...``: tables, figures and captions (:mod:`qac.report.cli`)."""
    from qac.report.cli import run

    return run(args)


def cmd_paper(args) -> int:
    """``qac paper ...``: comparison, claims and audit against the paper (:mod:`qac.paper.cli`)."""
    from qac.paper.cli import run

    return run(args)


# --------------------------------------------------------------------------------------------
def _version() -> str:
    """qac-bench's version and torch's (from the installed package metadata)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("qac-bench")
    except PackageNotFoundError:  # running from a checkout that was never installed
        ours = "unknown (not installed)"
    return f"{ours} (torch {torch.__version__})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qac",
        description="QAC replication suite: train quantized ANNs, convert them to mixed-timestep "
        "SNNs, calibrate and evaluate (Algorithm 1 of the paper).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="start this configuration's run over (ignore its saved state and finished model)",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="ANN and SNN accuracy, timesteps, spikes, energy")
    p.add_argument("--checkpoint", required=True, help="model.pt written by 'qac train'")
    p.add_argument("--arch", help="fail unless the checkpoint holds this architecture")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument(
        "--policy",
        type=_policy,
        help="convert with this alignment policy (repl+aver, repl+trunc, "
        "aver+trunc, aver+aver, aver+aver+aver, qcfs, qcfs+aver)",
    )
    p.add_argument(
        "--v0",
        type=_v0_option,
        default="half",
        help="initial membrane potential: half, zero, number",
    )
    p.add_argument(
        "--k", type=_int_at_least(1), default=1, help="temporal scale k: every layer runs k*T_l"
    )
    p.add_argument("--timesteps", type=_int_at_least(1), help="run every layer for T steps (QCFS)")
    p.add_argument("--calibration", help="calibration file written by 'qac calibrate'")
    p.add_argument(
        "--snn",
        action="append",
        type=_snn_setting,
        metavar="SPEC",
        help="an SNN setting to evaluate (repeatable): POLICY[,k=K][,v0=half|zero|X][,T=N]"
        "[,cal][,f64], e.g. 'aver+aver,k=2' or 'aver+aver,cal' (uses --calibration)",
    )
    p.add_argument(
        "--sweep",
        type=_timesteps_list,
        help="QCFS T sweep, e.g. 1,2,3,4,8,16,32,64 (with and without averaging alignment)",
    )
    p.add_argument(
        "--model-id",
        type=_model_id,
        metavar="DATASET/ARCH/ACT",
        help="the workflow's model id to record in the output, e.g. cifar10/resnet20/qac-c4",
    )
    _data_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("calibrate", help="calibrate v0 and v_th (Sec. 4.4, Eqs. 15-17)")
    p.add_argument("--checkpoint", required=True, help="model.pt written by 'qac train'")
    p.add_argument("--arch", help="fail unless the checkpoint holds this architecture")
    p.add_argument("--out", required=True, help="calibration file to write (.pt)")
    p.add_argument("--metrics", help="JSON file for losses and accuracies before/after")
    p.add_argument(
        "--policy", type=_policy, default="aver+aver", help="alignment policy of the SNN"
    )
    p.add_argument(
        "--samples",
        type=_int_at_least(1),
        default=1024,
        help="number of (unlabeled) images used for calibration",
    )
    p.add_argument("--epochs", type=_int_at_least(0), default=30, help="calibration epochs")
    p.add_argument(
        "--lr", type=_positive_float, default=1e-3, help="learning rate of the optimizer"
    )
    p.add_argument(
        "--optimizer",
        default="adam",
        choices=["adam", "sgd"],
        help="adam (default) or sgd: Algorithm 1's plain gradient step (lines 26-32)",
    )
    p.add_argument(
        "--source",
        default="train",
        choices=["train", "test", "noise"],
        help="unlabeled calibration images: training split (default), test split, or "
        "standard-normal noise (no dataset)",
    )
    p.add_argument(
        "--no-revert",
        action="store_true",
        help="keep the calibrated state even when it did not lower the calibration loss",
    )
    p.add_argument(
        "--calib-batch-size", type=_int_at_least(1), default=64, help="calibration batch size"
    )
    p.add_argument(
        "--v0-shape",
        default="channel",
        choices=["channel", "layer"],
        help="one initial membrane potential per channel (default) or per layer",
    )
    p.add_argument(
        "--eval-limit",
        type=_int_at_least(0),
        default=None,
        help="test images for the before/after accuracy (0 = skip; default: --limit)",
    )
    _data_args(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("info", help="print a checkpoint's per-layer T, bits and alpha")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_info)

    from qac.paper.cli import add_commands as add_paper_commands
    from qac.report.cli import add_commands as add_report_commands

    p = sub.add_parser("report", help="tables, figures and captions from evaluation JSON files")
    add_report_commands(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("paper", help="compare, claims, audit, summary: our results vs the paper")
    add_paper_commands(p)
    p.set_defaults(func=cmd_paper)
    return parser


def _message(exc: BaseException, width: int = 600) -> str:
    """One line for the user: a KeyError names its key; a message over several lines, or one
    ending in ':' with its cause below (e.g. torch's state-dict errors), is joined with '; '."""
    if isinstance(exc, KeyError) and len(exc.args) == 1 and str(exc.args[0]).isidentifier():
        text = f"missing key {_key(exc)}"
    else:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cause = exc.__cause__
    if lines and lines[-1].endswith(":") and cause is not None:
        below = [line.strip() for line in str(cause).splitlines() if line.strip()]
        lines += below[1:] if below and lines[-1].endswith(below[0]) else below
    message = "; ".join(lines) or type(exc).__name__
    return message if len(message) <= width else message[: width - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    set_threads()
    tune_allocator()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"qac {args.command}: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"qac {args.command}: interrupted (outputs are written atomically; rerun to resume)",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
