"""``python -m benchmarks``: run the performance measurements and write JSON + Markdown.

Examples::

    python -m benchmarks                     # everything, CPU or CUDA (auto), paper settings
    python -m benchmarks --quick             # small batch, few rounds (a minute or two)
    python -m benchmarks --only qat,sweep    # some sections
    python -m benchmarks --device cuda       # on a GPU (results/benchmarks/cuda/)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from benchmarks import augment, cases
from benchmarks.report import markdown, write_json, write_markdown
from qac import kernels
from qac.runtime import prepare_process, resolve_device, tune_allocator

SECTIONS = ("snn", "dense", "qat", "sweep", "workflow", "augment")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    try:
        sj_version: str | None = version("spikingjelly")
    except PackageNotFoundError:
        sj_version = None
    native = "torch"
    if device.type == "cpu":
        native = "native (fused C++)" if kernels.use_native(torch.zeros(1)) else "torch"
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "spikingjelly": sj_version,
        "kernels": native,
        "allocator_tuned": tune_allocator(),
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    p.add_argument("--quick", action="store_true", help="batch 32, 2 rounds, fewer cases")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of {SECTIONS}")
    p.add_argument(
        "--batch", type=int, default=None, help="batch size (default 128, augment 200; quick: 32)"
    )
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5; quick: 2)")
    p.add_argument(
        "--out", type=Path, default=None, help="folder (default results/benchmarks/DEVICE)"
    )
    return p


def run(args: argparse.Namespace) -> dict:
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise SystemExit(
            f"python -m benchmarks: unknown section(s) {unknown}; choose from {SECTIONS}"
        )
    device = resolve_device(args.device)
    s = cases.Settings(
        device=device,
        batch=args.batch or (32 if args.quick else 128),
        rounds=args.rounds or (2 if args.quick else 5),
    )
    archs = ("resnet20",) if args.quick else ("resnet20", "vgg16")
    sections: dict[str, list[dict]] = {}

    def add(key: str, rows: list[dict]) -> None:
        sections.setdefault(key, []).extend(rows)
        for row in rows:
            print(f"  {key}: " + ", ".join(f"{k}={_short(v)}" for k, v in row.items()), flush=True)

    if "snn" in only:
        for arch in archs:
            for T in (4,) if args.quick else (4, 8):
                add("snn_inference", cases.snn_inference(arch, T, s))
    if "dense" in only:
        for arch in archs:
            for profile in ("uniform", "mixed"):
                for policy in ("aver+aver", "aver+aver+aver"):
                    add("dense_bound", cases.dense_bound(arch, profile, policy, s))
    if "qat" in only:
        for arch in archs:
            for dtype in ("fp32", "bf16"):
                add("qat_overhead", cases.qat_overhead(arch, dtype, s))
    if "sweep" in only:
        add(
            "sweep",
            cases.sweep("resnet20", s, (1, 2, 4, 8) if args.quick else (1, 2, 4, 8, 16, 32, 64)),
        )
    if "workflow" in only:
        add("workflow", cases.workflow())
    if "augment" in only:  # at the paper preset's batch (200) unless --batch is given
        rounds = s.rounds if args.quick else max(s.rounds, 7)
        batch = args.batch or (32 if args.quick else 200)
        add("augment", augment.augment(batch, rounds, device=device, quick=args.quick))
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m benchmarks " + " ".join(sys.argv[1:]),
        "machine": machine_info(device),
        "settings": {"batch": s.batch, "rounds": s.rounds, "warmup": s.warmup, "quick": args.quick},
        "sections": sections,
    }


def _short(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not prepare_process("benchmarks"):
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args)
    out = args.out or Path("results") / "benchmarks" / result["machine"]["device"]
    write_json(result, out / "benchmarks.json")
    write_markdown(result, out / "benchmarks.md")
    print(markdown(result))
    print(f"wrote {out / 'benchmarks.json'} and {out / 'benchmarks.md'}")
    return 0
