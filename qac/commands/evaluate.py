"""``qac evaluate``: ANN and SNN accuracy, timesteps, spikes and energy of a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qac.checkpoint import CheckpointError
from qac.commands import options as opt
from qac.commands.inputs import check_output, dataset_for, load_checkpoint_model, require_snn
from qac.data import BatchLoader
from qac.experiments import SNNSetting
from qac.train import ConfigError


def add_parser(sub) -> None:
    """Add ``evaluate`` to the subcommands ``sub``."""
    p = sub.add_parser("evaluate", help="ANN and SNN accuracy, timesteps, spikes, energy")
    opt.checkpoint_args(p, "JSON file to write")
    p.add_argument(
        "--policy",
        type=opt.policy,
        help="convert with this alignment policy (repl+aver, repl+trunc, "
        "aver+trunc, aver+aver, aver+aver+aver, qcfs, qcfs+aver)",
    )
    p.add_argument(
        "--v0",
        type=opt.v0_option,
        default="half",
        help="initial membrane potential: half, zero, number",
    )
    p.add_argument(
        "--k", type=opt.int_at_least(1), default=1, help="temporal scale k: every layer runs k*T_l"
    )
    p.add_argument(
        "--timesteps", type=opt.int_at_least(1), help="run every layer for T steps (QCFS)"
    )
    p.add_argument("--calibration", help="calibration file written by 'qac calibrate'")
    p.add_argument(
        "--snn",
        action="append",
        type=opt.snn_setting,
        metavar="SPEC",
        help="an SNN setting to evaluate (repeatable): POLICY[,k=K][,v0=half|zero|X][,T=N]"
        "[,cal][,f64], e.g. 'aver+aver,k=2' or 'aver+aver,cal' (uses --calibration)",
    )
    p.add_argument(
        "--sweep",
        type=opt.timesteps_list,
        help="QCFS T sweep, e.g. 1,2,3,4,8,16,32,64 (with and without averaging alignment)",
    )
    p.add_argument(
        "--sweep-limit",
        type=opt.int_at_least(1),
        metavar="N",
        help="run the --sweep on the class-balanced subset of N test images that --limit N "
        "picks (default: the images of every other result); the ANN and --snn results keep "
        "--limit",
    )
    p.add_argument(
        "--model-id",
        type=opt.model_id,
        metavar="DATASET/ARCH/ACT",
        help="the workflow's model id to record in the output, e.g. cifar10/resnet20/qac-c4",
    )
    opt.data_args(p)
    p.set_defaults(func=run)


def load_calibration(path: str) -> dict[str, Any]:
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


def snn_settings(args, calib: dict[str, Any] | None) -> list[SNNSetting]:
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
    """``({"T", "qcfs": {T: acc}, "qcfs+aver": {T: acc}, "num_samples": n}, {method: {T:
    per-image record}})``; ``num_samples``: the number of test images the sweep ran on."""
    from qac.evaluate import qcfs_sweep_records

    accuracies: dict[str, Any] = {"T": Ts}
    per_image: dict[str, Any] = {}
    n = None
    for key, averaged in (("qcfs", False), ("qcfs+aver", True)):
        records = qcfs_sweep_records(model, loader, Ts, averaged=averaged, progress=progress)
        accuracies[key] = {T: rec.accuracy for T, rec in records.items()}
        per_image[key] = {T: rec.to_json() for T, rec in records.items()}
        n = next((rec.n for rec in records.values()), n)
    accuracies["num_samples"] = n
    return accuracies, per_image


def _sweep_loader(args, payload, test, loader, device) -> BatchLoader:
    """The loader of the QCFS sweep: ``loader`` itself, or the class-balanced subset of
    ``--sweep-limit`` test images (the one ``--limit`` would pick) when that is another set."""
    if args.sweep_limit is None or args.sweep_limit == args.limit:
        return loader
    if args.limit is None and args.sweep_limit >= len(test):
        return loader  # the whole test set either way
    subset = dataset_for(args, payload, "test", args.sweep_limit)
    return BatchLoader(subset, args.batch_size, train=False, device=device)


def _snn_runs(args, model, loader, settings, neuron_state, dtype) -> list[dict[str, Any]]:
    """One :func:`qac.evaluate.evaluate_snn` result per SNN setting."""
    from qac.evaluate import evaluate_snn

    return [
        evaluate_snn(
            model,
            loader,
            policy=st.policy,
            v0=st.v0,
            temporal_scale=st.k,
            timesteps=st.timesteps,
            neuron_state=neuron_state if st.cal else None,
            dtype=torch.float64 if st.f64 else dtype,
            progress=not args.no_progress,
        )
        for st in settings
    ]


def run(args) -> int:
    from qac.evaluate import check_neuron_state, evaluate_ann, write_evaluation

    check_output(args.out, "--out")
    if args.sweep_limit is not None and not args.sweep:
        raise ConfigError("--sweep-limit limits the QCFS --sweep: pass --sweep T1,T2,... too")
    calib = load_calibration(args.calibration) if args.calibration else None
    device, model, payload = load_checkpoint_model(args)
    settings = snn_settings(args, calib)
    if settings or args.sweep:
        require_snn(model, args, "--snn/--policy/--calibration/--sweep")
    neuron_state = calib["state"] if calib is not None else None
    if neuron_state is not None:
        check_neuron_state(model, neuron_state)
    test = dataset_for(args, payload, "test", args.limit)
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
    runs = _snn_runs(args, model, loader, settings, neuron_state, dtype)
    if runs:
        result["snn"] = runs
    if args.sweep:
        sweep_loader = _sweep_loader(args, payload, test, loader, device)
        result["qcfs_sweep"], result["qcfs_sweep_per_image"] = _qcfs_sweep_result(
            model, sweep_loader, args.sweep, progress
        )
    write_evaluation(args.out, result, settings, model=args.model_id)
    line = f"ANN {result['ann']['ann_acc']:.2f}%"
    for st, snn in zip(settings, runs, strict=True):
        line += f"; SNN {snn['snn_acc']:.2f}% ({st}, avg T {snn['avg_timesteps']:.2f})"
    print(line + f" -> {args.out}")
    return 0
