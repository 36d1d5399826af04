"""Benchmark results as JSON (everything) and Markdown (one table per measurement)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from qac.io import atomic_write_text

__all__ = ["write_json", "write_markdown", "markdown"]

# (section key, title, columns: (header, row key, format))
SECTIONS: list[tuple[str, str, list[tuple[str, str, str]]]] = [
    (
        "snn_inference",
        "1. SNN inference: ours vs SpikingJelly (same converted network, uniform T)",
        [
            ("arch", "arch", "s"),
            ("T", "T", "d"),
            ("equal-T boundaries", "equal", "s"),
            ("ours img/s", "ours_img_s", ".1f"),
            ("SpikingJelly (fastest mode)", "spikingjelly_mode", "s"),
            ("SJ img/s", "spikingjelly_img_s", ".1f"),
            ("ratio", "ratio", ".2f"),
            ("target", "target_ratio", ".1f"),
            ("same predictions", "prediction_agreement", ".3f"),
            ("met", "met", "b"),
        ],
    ),
    (
        "dense_bound",
        "2. Efficiency against the dense bound sum_l T_l t_l",
        [
            ("arch", "arch", "s"),
            ("T profile", "profile", "s"),
            ("policy", "policy", "s"),
            ("mean T", "mean_T", ".2f"),
            ("bound img/s", "bound_img_s", ".1f"),
            ("SNN img/s", "snn_img_s", ".1f"),
            ("efficiency", "efficiency", ".2f"),
            ("target", "target", ".1f"),
            ("met", "met", "b"),
        ],
    ),
    (
        "qat_overhead",
        "3. Training step: quantized activations vs ReLU",
        [
            ("arch", "arch", "s"),
            ("dtype", "dtype", "s"),
            ("activation", "activation", "s"),
            ("step ms", "step_ms", ".1f"),
            ("img/s", "img_s", ".0f"),
            ("x ReLU", "ratio_to_relu", ".3f"),
            ("target", "target", ".2f"),
            ("met", "met", "b"),
        ],
    ),
    (
        "sweep",
        "4. QCFS T sweep: one pass for all T vs one run per T",
        [
            ("arch", "arch", "s"),
            ("T values", "timesteps", "s"),
            ("one pass s", "one_pass_s", ".2f"),
            ("separate runs s", "separate_s", ".2f"),
            ("speed-up", "speedup", ".2f"),
            ("ideal (sum T / max T)", "ideal_speedup", ".2f"),
            ("same accuracies", "same_accuracies", "b"),
        ],
    ),
    (
        "workflow",
        "5. Workflow overhead",
        [
            ("command", "command", "s"),
            ("seconds", "seconds", ".2f"),
            ("jobs", "jobs", "d"),
            ("target s", "target_s", ".0f"),
            ("met", "met", "b"),
        ],
    ),
    (
        "augment",
        "6. CIFAR training augmentation (QCFS recipe) vs one QAC ResNet-20 training step",
        [
            ("pipeline", "pipeline", "s"),
            ("device", "device", "s"),
            ("batch", "batch", "d"),
            ("ms / batch", "ms_per_batch", ".1f"),
            ("img/s", "img_s", ".0f"),
            ("/ step fp32", "x_step_fp32", ".3f"),
            ("/ step bf16", "x_step_bf16", ".3f"),
            ("/ ours (full)", "x_ours_full", ".2f"),
            ("the recipe", "recipe", "yn"),
        ],
    ),
]


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if fmt == "b":
        return "yes" if value else "**NO**"
    if fmt == "yn":  # a property, not a target
        return "yes" if value else "no"
    if fmt == "s":
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    return format(value, fmt)


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# qac-bench performance benchmarks",
        "",
        f"{result['date']} · {m['device_name']} ({m['device']}) · {m['threads']} threads · "
        f"torch {m['torch']} · spikingjelly {m['spikingjelly'] or 'not installed'} · "
        f"kernels: {m['kernels']} · command: `{result['command']}`",
        "",
        "Ratios compare medians of interleaved runs in one process. 'met' is the target of the "
        "performance issue; a **NO** is reported as measured, not tuned away.",
    ]
    for key, title, columns in SECTIONS:
        rows = result["sections"].get(key)
        if rows is None:
            continue
        lines += ["", f"## {title}", ""]
        lines.append("| " + " | ".join(h for h, _, _ in columns) + " |")
        lines.append("|" + "|".join("---" for _ in columns) + "|")
        for row in rows:
            lines.append("| " + " | ".join(_cell(row.get(k), f) for _, k, f in columns) + " |")
        notes = sorted({row["note"] for row in rows if row.get("note")})
        lines += [f"\n_{note}_" for note in notes]
    return "\n".join(lines) + "\n"


def write_json(result: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(result, indent=2, default=str) + "\n")


def write_markdown(result: dict, path: Path) -> None:
    atomic_write_text(path, markdown(result))


def _grid(rows: list[dict], key: tuple[str, ...], col: str, value: str, fmt: str) -> dict:
    """``{(key values, column value): formatted value}`` over the rows that have the value."""
    return {
        (tuple(r[k] for k in key), r[col]): format(r[value], fmt)
        for r in rows
        if r.get(value) is not None
    }


def summary(result: dict) -> str:
    """The compact tables the README quotes (one line per network)."""
    sec = result["sections"]
    m = result["machine"]
    out = [
        f"Measured {result['date']} on {m['device_name']} ({m['threads']} threads), torch "
        f"{m['torch']}, SpikingJelly {m['spikingjelly'] or '-'}, "
        f"batch {result['settings']['batch']}:",
        "",
    ]
    if "snn_inference" in sec:
        g = _grid(sec["snn_inference"], ("arch", "T"), "equal", "ratio", ".2f")
        out += [
            "| SNN inference, ours / SpikingJelly | T | spikes propagate (target >= 1.0) "
            "| averaging (target >= 2.0) |",
            "|---|---|---|---|",
        ]
        for arch, T in dict.fromkeys(k for k, _ in g):
            out.append(
                f"| {arch} | {T} | {g.get(((arch, T), 'none'), '-')}x "
                f"| {g.get(((arch, T), 'average'), '-')}x |"
            )
        out.append("")
    if "dense_bound" in sec:
        rows = sec["dense_bound"]
        g = {(r["arch"], r["profile"], r["policy"]): f"{r['efficiency']:.2f}" for r in rows}
        out += [
            "| efficiency vs dense bound (target >= 0.8) | uniform T=4, aver+aver "
            "| mixed, aver+aver | uniform, aver+aver+aver | mixed, aver+aver+aver |",
            "|---|---|---|---|---|",
        ]
        for arch in dict.fromkeys(r["arch"] for r in rows):
            cells = [
                g.get((arch, p, pol), "-")
                for pol in ("aver+aver", "aver+aver+aver")
                for p in ("uniform", "mixed")
            ]
            out.append(f"| {arch} | " + " | ".join(cells) + " |")
        out.append("")
    if "qat_overhead" in sec:
        rows = sec["qat_overhead"]
        g = {(r["arch"], r["dtype"], r["activation"]): f"{r['ratio_to_relu']:.2f}" for r in rows}
        out += [
            "| training step / ReLU step | QAC fp32 (target <= 1.10) | QCFS fp32 | QAC bf16 "
            "| QCFS bf16 |",
            "|---|---|---|---|---|",
        ]
        for arch in dict.fromkeys(r["arch"] for r in rows):
            cells = [g.get((arch, d, a), "-") for d in ("fp32", "bf16") for a in ("qac", "qcfs")]
            out.append(f"| {arch} | " + " | ".join(f"{c}x" for c in cells) + " |")
        out.append("")
    for r in sec.get("sweep", []):
        out.append(
            f"QCFS sweep T in {{{', '.join(map(str, r['timesteps']))}}} ({r['arch']}): one pass "
            f"{r['one_pass_s']:.2f} s vs {r['separate_s']:.2f} s for separate runs, "
            f"{r['speedup']:.2f}x (ideal {r['ideal_speedup']:.2f}x)."
        )
    rows = {r["pipeline"]: r for r in sec.get("augment", [])}
    if "ours: full recipe" in rows:
        ours, step = rows["ours: full recipe"], rows["train step fp32"]
        tv = rows.get("torchvision v2 per image (Cutout)", {})
        out.append(
            f"Augmentation (crop+flip+AutoAugment+Cutout, batch {ours['batch']}): our loader "
            f"{ours['ms_per_batch']:.1f} ms/batch = {ours['x_step_fp32']:.3f} of an fp32 step "
            f"({step['ms_per_batch']:.0f} ms), {ours['x_step_bf16']:.3f} of a bf16 step; "
            f"torchvision v2 per image {tv.get('x_ours_full', math.nan):.1f}x ours."
        )
    for r in sec.get("workflow", []):
        if r.get("seconds") is not None:
            out.append(
                f"`{r['command']}`: {r['seconds']:.1f} s"
                + (f" ({r['jobs']} jobs)." if r.get("jobs") else ".")
            )
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import sys

    print(summary(json.loads(Path(sys.argv[1]).read_text())))
