"""The prepared GPU check: every CUDA path of the suite in one command (about 8 minutes).

    python -m qac.gpu_check                    # on a CUDA machine; writes results/gpu_check/
    python -m qac.gpu_check --dry-run          # on a CPU: builds every command, runs the cheap ones

Parts (each passes, fails, or -- ddp with fewer than 2 GPUs -- is skipped):

* ``cuda_tests``: the tests that skip without CUDA (found in tests/), none may skip;
* ``smoke_dag``: the whole smoke workflow with ``device=cuda`` in a temporary directory;
* ``resnet20``: the paper recipe (ResNet-20, QAC case 4) trained for a fixed number of steps on
  synthetic CIFAR-shaped data, calibrated, evaluated; the SNN under averaging everywhere in float64
  (``aver+aver+aver,f64``) must have the quantized ANN's accuracy; images/s of training and SNN
  inference and peak GPU memory are measured;
* ``benchmarks``: ``python -m benchmarks --device cuda --quick`` (results/benchmarks/cuda/);
* ``ddp``: 2 processes (torchrun, NCCL) against 1 process, float64 weights to 1e-8.

Prints one summary and writes ``summary.json`` and ``summary.md`` to ``--out``; exits 1 when a part
fails. ``--dry-run`` runs the CPU form of each part (test collection, DAG dry-run, a tiny resnet20
on the CPU, ``benchmarks --help``) and lists the ddp command.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
PARTS = ("cuda_tests", "smoke_dag", "resnet20", "benchmarks", "ddp")
TIMEOUTS = {"cuda_tests": 90, "smoke_dag": 210, "resnet20": 150, "benchmarks": 120, "ddp": 120}
_CUDA_SKIP = re.compile(
    r"skipif\(\s*not torch\.cuda\.is_available\(\)[^\n]*\n(?:@[^\n]*\n)*def (\w+)"
)


@dataclass
class Result:
    """The outcome of one part: ``status`` is pass, fail, skip or listed (dry run, not run)."""

    status: str
    seconds: float = 0.0
    detail: str = ""
    command: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    out: Path
    dry_run: bool
    device: str
    steps: int
    workdir: Path


def cuda_test_ids(tests: Path = REPO / "tests") -> list[str]:
    """Node ids of the tests that skip without CUDA (``skipif(not torch.cuda.is_available())``)."""
    return [
        f"tests/{path.name}::{name}"
        for path in sorted(tests.glob("test_*.py"))
        for name in _CUDA_SKIP.findall(path.read_text())
    ]


def _pythonpath() -> str:
    """This checkout first, then whatever PYTHONPATH already holds (e.g. carried wheels)."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def _run(command: list[str], timeout: float, cwd: Path = REPO, **env: str) -> Result:
    """Run ``command``; pass when it exits 0 (detail: the last output lines)."""
    t0 = time.time()
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": _pythonpath(), **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Result("fail", time.time() - t0, f"timed out after {timeout} s", command)
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-5:])
    return Result("pass" if proc.returncode == 0 else "fail", time.time() - t0, tail, command)


def part_cuda_tests(opts: Options) -> Result:
    ids = cuda_test_ids()
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *ids]
    if opts.dry_run:
        command.append("--collect-only")
    result = _run(command, TIMEOUTS["cuda_tests"])
    if not ids or "SKIPPED" in result.detail or re.search(r"\d+ skipped", result.detail):
        result.status = "fail"
        result.detail = f"no CUDA tests found or some skipped: {result.detail}"
    result.metrics["tests"] = len(ids)
    return result


def part_smoke_dag(opts: Options) -> Result:
    device = "cpu" if opts.dry_run else opts.device
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(opts.workdir / "smoke"), "--workflow-profile", "none",
        "--cores", str(os.cpu_count()), "all", "--config", "scale=smoke", f"device={device}",
    ]  # fmt: skip
    if opts.dry_run:
        command.append("-n")
    return _run(command, TIMEOUTS["smoke_dag"])


def _resnet20_config(opts: Options) -> dict[str, Any]:
    """The paper's ResNet-20 QAC case-4 training recipe, for ``opts.steps`` steps."""
    from qac.workflow import PRESET_DIR, Model, resolve_config, train_options

    paper = resolve_config({"scale": "paper"}, PRESET_DIR)  # run from a checkout
    cfg = train_options(paper, Model("cifar10", "resnet20", "qac-c4"))
    batch = 16 if opts.dry_run else cfg["batch_size"]
    cfg.update(
        dataset="synthetic-cifar10",
        data_root=str(opts.workdir / "data"),
        cache_dir=None,
        data_options={"train_size": opts.steps * batch, "test_size": 64 if opts.dry_run else 2000},
        batch_size=batch,
        epochs=1,
        device="cpu" if opts.dry_run else opts.device,
        progress=False,
    )
    if opts.dry_run:
        cfg["width"] = 0.125
    return cfg


def _timed_cli(argv: list[str], device: torch.device) -> tuple[float, float]:
    """(seconds, peak GPU MiB) of one in-process ``qac`` command; raises when it fails."""
    from qac.cli import main

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.time()
    if main(argv) != 0:
        raise RuntimeError(f"qac {' '.join(argv)} failed")
    seconds = time.time() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else 0.0
    return seconds, peak


def part_resnet20(opts: Options) -> Result:
    from qac.runtime import resolve_device

    cfg = _resnet20_config(opts)
    device = resolve_device(cfg["device"])
    work = opts.workdir / "resnet20"
    model, evaluation = work / "model.pt", work / "eval.json"
    common = ["--device", cfg["device"], "--no-progress"]
    train_s, train_mib = _timed_cli(
        ["train", "--config-json", json.dumps(cfg), "--out", str(work), "--no-progress"], device
    )
    _timed_cli(
        ["calibrate", "--checkpoint", str(model), "--out", str(work / "cal.pt"), "--epochs", "1",
         "--samples", "256", "--eval-limit", "0", *common],
        device,
    )  # fmt: skip
    _timed_cli(
        ["evaluate", "--checkpoint", str(model), "--out", str(evaluation), "--calibration",
         str(work / "cal.pt"), "--snn", "aver+aver+aver,f64", "--snn", "aver+aver+aver,cal",
         *common],
        device,
    )  # fmt: skip
    test_images = cfg["data_options"]["test_size"]
    snn_s, snn_mib = _timed_cli(
        ["evaluate", "--checkpoint", str(model), "--out", str(work / "speed.json"), "--snn",
         "aver+aver+aver", *common],
        device,
    )  # fmt: skip
    result = json.loads(evaluation.read_text())
    ann = result["ann"].get("ann_acc_float64", result["ann"]["ann_acc"])
    snn = result["snn"][0]["snn_acc"]
    metrics = {
        "train_images_per_s": cfg["data_options"]["train_size"] / train_s,  # incl. data, eval
        "snn_images_per_s": test_images / snn_s,  # includes the ANN pass and loading
        "peak_gpu_mib_train": train_mib,
        "peak_gpu_mib_snn": snn_mib,
        "ann_acc_f64": ann,
        "snn_acc_aver_f64": snn,
        "snn_acc_calibrated": result["snn"][1]["snn_acc"],
    }
    error = max(result["snn"][0].get("conversion_error", {"none": 0.0}).values())
    metrics["max_conversion_error_f64"] = error
    ok = ann == snn and error < 1e-9
    detail = (
        f"SNN (aver+aver+aver, f64) {snn:.2f}% {'=' if ok else '!='} quantized ANN {ann:.2f}%, "
        f"max layer error {error:.1e}"
    )
    return Result("pass" if ok else "fail", train_s + snn_s, detail, ["(in process)"], metrics)


def part_benchmarks(opts: Options) -> Result:
    command = [sys.executable, "-m", "benchmarks", "--device", opts.device, "--quick"]
    if opts.dry_run:
        return _run([*command, "--help"], TIMEOUTS["benchmarks"])
    return _run(command, TIMEOUTS["benchmarks"])


def _ddp_command(out: Path, processes: int, device: str) -> list[str]:
    cfg = {
        "arch": "resnet20", "width": 0.25, "dataset": "synthetic-cifar10", "epochs": 2,
        "data_options": {"train_size": 1000, "test_size": 200}, "batch_size": 100,
        "float64": True, "device": device, "progress": False,
    }  # fmt: skip
    launch = [sys.executable]
    if processes > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    return [*launch, "-m", "qac.cli", "train", "--config-json", json.dumps(cfg), "--out", str(out)]


def part_ddp(opts: Options) -> Result:
    work = opts.workdir / "ddp"
    one, two = _ddp_command(work / "one", 1, "cuda"), _ddp_command(work / "two", 2, "cuda")
    if opts.dry_run:
        return Result("listed", command=two, detail="needs 2 GPUs: " + " ".join(one))
    if torch.cuda.device_count() < 2:
        return Result("skip", command=two, detail="fewer than 2 GPUs visible")
    for command in (one, two):
        result = _run(command, TIMEOUTS["ddp"])
        if result.status != "pass":
            return result
    a, b = (
        torch.load(work / d / "model.pt", weights_only=False)["state_dict"] for d in ("one", "two")
    )
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    status = "pass" if diff < 1e-8 else "fail"
    return Result(status, 0.0, f"max |w1 - w2| = {diff:.2e}", two, {"max_weight_diff": diff})


CHECKS: dict[str, Callable[[Options], Result]] = {
    "cuda_tests": part_cuda_tests,
    "smoke_dag": part_smoke_dag,
    "resnet20": part_resnet20,
    "benchmarks": part_benchmarks,
    "ddp": part_ddp,
}


def run_part(name: str, opts: Options) -> Result:
    """One part; an exception is a failure with its message."""
    t0 = time.time()
    try:
        result = CHECKS[name](opts)
    except Exception as exc:  # noqa: BLE001 -- every failure must reach the summary
        result = Result("fail", detail=f"{type(exc).__name__}: {exc}")
    result.seconds = round(result.seconds or time.time() - t0, 1)
    return result


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (one row per part, then the measurements)."""
    lines = [
        f"# GPU check: {'PASS' if summary['ok'] else 'FAIL'}",
        "",
        f"device: {summary['device']}, torch {summary['torch']}, dry run: {summary['dry_run']}",
        "",
        "| part | status | seconds | detail |",
        "|---|---|---|---|",
    ]
    for name, part in summary["parts"].items():
        detail = part["detail"].replace("\n", " / ").replace("|", "\\|")[:300]
        lines.append(f"| {name} | {part['status'].upper()} | {part['seconds']} | {detail} |")
    metrics = summary["parts"].get("resnet20", {}).get("metrics", {})
    if metrics:
        lines += ["", "| measurement | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"


def run_check(opts: Options, parts: list[str]) -> dict[str, Any]:
    """Run ``parts``; write summary.json and summary.md to ``opts.out``; return the summary."""
    results = {}
    for name in parts:
        print(f"[gpu_check] {name} ...", flush=True)
        results[name] = run_part(name, opts)
        print(f"[gpu_check] {name}: {results[name].status} ({results[name].seconds} s)", flush=True)
    ok = all(r.status != "fail" for r in results.values())
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    summary = {
        "ok": ok,
        "dry_run": opts.dry_run,
        "device": device,
        "torch": torch.__version__,
        "parts": {name: asdict(r) for name, r in results.items()},
    }
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (opts.out / "summary.md").write_text(summary_markdown(summary))
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m qac.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=None, help="default results/gpu_check/<cuda|dry>")
    p.add_argument("--dry-run", action="store_true", help="CPU: check the plumbing only")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list of {','.join(PARTS)}")
    p.add_argument("--steps", type=int, default=None, help="resnet20 training steps (200; dry 2)")
    p.add_argument("--device", default="cuda", help="CUDA device of the parts (default cuda)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        print(f"gpu_check: unknown part(s) {unknown}: choose from {list(PARTS)}", file=sys.stderr)
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU is visible: run it on a GPU, or pass --dry-run", file=sys.stderr
        )
        return 2
    out = args.out or REPO / "results" / "gpu_check" / ("dry" if args.dry_run else "cuda")
    with tempfile.TemporaryDirectory(prefix="qac-gpu-check-") as tmp:
        steps = args.steps or (2 if args.dry_run else 200)
        opts = Options(out, args.dry_run, args.device, steps, Path(tmp))
        summary = run_check(opts, parts)
    print(summary_markdown(summary))
    print(f"[gpu_check] {'PASS' if summary['ok'] else 'FAIL'} -> {out}/summary.json, summary.md")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
