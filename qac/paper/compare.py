"""Compare our results with the numbers the paper reports.

:func:`compare` joins a tidy results frame (same columns as the reference CSV) with the
reference on the key columns ``(table, dataset, architecture, method, quantity, T, L, k,
alignment, calibration)`` and gives every reported number a verdict:

``reproduced``      we have a number and |ours - reported| <= tolerance (comparable scales
                    only, i.e. ``paper``)
``not-reproduced``  we have a number, |ours - reported| > tolerance, and the reported value
                    lies outside our 95 % interval widened by the tolerance
                    (``[ours_ci_low - tol, ours_ci_high + tol]``; without an interval, outside
                    the tolerance is enough)
``inconclusive``    we have a number beyond the tolerance, but the reported value lies within
                    that widened interval: our test set is too small to tell
``not-run``         we have no number for this reported one: the cell was not run at this
                    scale, or the row is a method we do not run (a literature row)
``informational``   we have a number, but at a scale (``smoke``, ``cpu``, ...) where it is
                    not expected to match; ``delta`` is still computed
``no-reference``    our number has no reported counterpart (only with
                    ``include_unmatched_ours=True``)

Tolerances are per scale and quantity (:data:`DEFAULT_TOLERANCES`, percentage points for
accuracies, steps for timesteps).  Notes on both sides are kept (``reported_note``,
``ours_note``) - e.g. "CIFAR-10 JPEG copy, expect 2-3% lower".
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from qac.io import atomic_write_text
from qac.paper.reference import KEY_COLUMNS, TEXT_COLUMNS, load_reference, normalize_frame

__all__ = [
    "DEFAULT_TOLERANCES",
    "COMPARABLE_SCALES",
    "DEFAULT_METHODS",
    "VERDICTS",
    "OUTPUT_COLUMNS",
    "compare",
    "comparison_markdown",
    "write_comparison",
]

#: Tolerance per scale and quantity.  ``paper``: 1.0 pp for accuracies (run-to-run noise
#: of CIFAR/ImageNet training is a few tenths of a point; 1.0 leaves room for
#: framework/hardware differences), 0.5 steps for QAC's learned average timesteps, exact
#: for integer timestep settings.  ``default`` applies to any other quantity.
DEFAULT_TOLERANCES: dict[str, dict[str, float]] = {
    "paper": {
        "ann_acc": 1.0,
        "snn_acc": 1.0,
        "avg_timesteps": 0.5,
        "timesteps": 0.0,
        "avg_bits": 0.25,
        "default": 1.0,
    },
}
#: Scales whose numbers are expected to match the paper (verdicts reproduced, not-reproduced,
#: inconclusive).
COMPARABLE_SCALES: tuple[str, ...] = ("paper",)
#: Reference methods we try to reproduce (literature rows of other methods are left out of
#: the comparison unless our results contain that method).
DEFAULT_METHODS: tuple[str, ...] = ("QAC", "QCFS", "QCFS+aver")
#: All verdicts :func:`compare` can give.
VERDICTS: tuple[str, ...] = (
    "reproduced",
    "not-reproduced",
    "inconclusive",
    "not-run",
    "informational",
    "no-reference",
)
#: Columns of the frame returned by :func:`compare`.
OUTPUT_COLUMNS: tuple[str, ...] = (
    *KEY_COLUMNS,
    "unit",
    "reported",
    "ours",
    "delta",
    "ours_ci_low",
    "ours_ci_high",
    "tolerance",
    "verdict",
    "scale",
    "reported_note",
    "ours_note",
)

_INT_KEYS = ("T", "L", "k")
_CI = ("ci_low", "ci_high")


def _key_strings(df: pd.DataFrame) -> pd.DataFrame:
    """Null-safe, type-normalised string version of the key columns for joining."""
    out = pd.DataFrame(index=df.index)
    for col in KEY_COLUMNS:
        s = df[col]
        if col in _INT_KEYS:
            out[f"_k_{col}"] = s.map(lambda v: "" if pd.isna(v) else str(int(v)))
        else:
            out[f"_k_{col}"] = s.map(lambda v: "" if v is None or pd.isna(v) else str(v).strip())
    return out


def _tolerance(tolerances: Mapping[str, Mapping[str, float]], scale: str, quantity: str) -> float:
    table = tolerances.get(scale) or tolerances.get("paper") or {}
    if quantity in table:
        return float(table[quantity])
    return float(table.get("default", math.nan))


def compare(
    ours: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    *,
    scale: str,
    tolerances: Mapping[str, Mapping[str, float]] | None = None,
    comparable_scales: Iterable[str] = COMPARABLE_SCALES,
    methods: Sequence[str] | None = DEFAULT_METHODS,
    include_unmatched_ours: bool = False,
    on_duplicate: Literal["error", "mean", "last"] = "error",
) -> pd.DataFrame:
    """Join our results with the paper's numbers and give each a verdict.

    Args:
        ours: our results (reference columns; optional ``scale`` column - when present,
            only rows of ``scale`` or without a scale are used).
        reference: the paper's numbers; defaults to :func:`qac.paper.reference.load_reference`.
        scale: the scale our results were produced at (``paper``, ``smoke``, ``cpu``...).
        tolerances: ``{scale: {quantity: tol}}``; defaults to :data:`DEFAULT_TOLERANCES`.
            A scale without its own entry uses ``paper``'s.
        comparable_scales: scales whose numbers get ``match``/``differs`` verdicts; at any
            other scale rows we have get ``informational``.
        methods: reference methods to include (plus any method present in ``ours``);
            ``None`` keeps every reference row.
        include_unmatched_ours: also list our rows without a reported counterpart
            (verdict ``no-reference``).
        on_duplicate: what to do when ``ours`` has several rows for one key: raise
            (``error``), average them (``mean``) or keep the last one (``last``).

    Returns:
        A frame with :data:`OUTPUT_COLUMNS`; ``delta = ours - reported``.
    """
    tolerances = DEFAULT_TOLERANCES if tolerances is None else tolerances
    comparable = scale in set(comparable_scales)
    ref = load_reference() if reference is None else normalize_frame(reference)
    mine = normalize_frame(ours)
    if "scale" in mine.columns:
        mine = mine[mine["scale"].isna() | (mine["scale"].astype("object") == scale)]
    if methods is not None:
        keep = set(methods) | set(mine["method"].dropna().unique())
        ref = ref[ref["method"].isin(keep)]

    rk = pd.concat([ref.reset_index(drop=True), _key_strings(ref.reset_index(drop=True))], axis=1)
    mk = pd.concat([mine.reset_index(drop=True), _key_strings(mine.reset_index(drop=True))], axis=1)
    kcols = [f"_k_{c}" for c in KEY_COLUMNS]

    dup = mk.duplicated(kcols, keep=False)
    if dup.any():
        if on_duplicate == "error":
            sample = mk.loc[dup, list(KEY_COLUMNS)].head(5).to_dict("records")
            raise ValueError(
                f"results hold {int(dup.sum())} rows with duplicate keys, e.g. {sample}"
            )
        agg = "mean" if on_duplicate == "mean" else "last"
        values = mk.groupby(kcols, sort=False)["value"].agg(agg)
        firsts = mk.drop_duplicates(kcols, keep="last").set_index(kcols)
        firsts["value"] = values
        mk = firsts.reset_index()

    ref_part = rk[kcols + list(KEY_COLUMNS) + ["unit", "value", "note"]].rename(
        columns={"value": "reported", "note": "reported_note"}
    )
    for c in _CI:
        if c not in mk.columns:
            mk[c] = math.nan
    our_part = mk[kcols + list(KEY_COLUMNS) + ["unit", "value", "note", *_CI]].rename(
        columns={
            **{c: f"ours_{c}" for c in _CI},
            "value": "ours",
            "note": "ours_note",
            "unit": "_ours_unit",
            **{c: f"_ours_{c}" for c in KEY_COLUMNS},
        }
    )
    how = "outer" if include_unmatched_ours else "left"
    merged = ref_part.merge(our_part, on=kcols, how=how, indicator=True)
    # rows only on our side: take their key values
    only_ours = merged["_merge"] == "right_only"
    for c in KEY_COLUMNS:
        merged.loc[only_ours, c] = merged.loc[only_ours, f"_ours_{c}"]
    merged.loc[only_ours, "unit"] = merged.loc[only_ours, "_ours_unit"]

    merged["reported"] = pd.to_numeric(merged["reported"], errors="coerce").astype(float)
    for c in ("ours", *(f"ours_{c}" for c in _CI)):
        merged[c] = pd.to_numeric(merged[c], errors="coerce").astype(float)
    merged["delta"] = merged["ours"] - merged["reported"]
    merged["tolerance"] = [
        _tolerance(tolerances, scale, q) if comparable else math.nan for q in merged["quantity"]
    ]

    def verdict(row: pd.Series) -> str:
        if pd.isna(row["reported"]):
            return "no-reference"
        if pd.isna(row["ours"]):
            return "not-run"
        if not comparable:
            return "informational"
        d, tol = row["delta"], row["tolerance"] + 1e-9
        if pd.isna(d):  # e.g. inf - inf
            return "reproduced" if row["ours"] == row["reported"] else "not-reproduced"
        if abs(d) <= tol:
            return "reproduced"
        lo, hi = row["ours_ci_low"], row["ours_ci_high"]
        if not (pd.isna(lo) or pd.isna(hi)) and lo - tol <= row["reported"] <= hi + tol:
            return "inconclusive"
        return "not-reproduced"

    merged["verdict"] = merged.apply(verdict, axis=1) if len(merged) else pd.Series(dtype=object)
    merged["scale"] = scale
    out = merged[list(OUTPUT_COLUMNS)].copy()
    for c in [c for c in TEXT_COLUMNS if c != "note"] + ["reported_note", "ours_note"]:
        out[c] = (
            out[c]
            .astype("object")
            .map(lambda v: None if v is None or (not isinstance(v, str) and pd.isna(v)) else v)
            .astype("object")
        )
    for c in _INT_KEYS:
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("Float64").round().astype("Int64")
    out = out.reset_index(drop=True)
    out.attrs["scale"] = scale
    return out


def _setting(row: pd.Series) -> str:
    parts = []
    for c in ("T", "L", "k"):
        if not pd.isna(row[c]):
            parts.append(f"{c}={int(row[c])}" if c != "k" else f"{int(row[c])}T")
    for c in ("alignment", "calibration"):
        if row[c] is not None and not pd.isna(row[c]):
            parts.append(str(row[c]))
    return " ".join(parts)


def _num(v: float, digits: int = 2) -> str:
    if v is None or pd.isna(v):
        return ""
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def _signed(v: float) -> str:
    if v is None or pd.isna(v):
        return ""
    return f"{v:+.2f}"


def _cell(v: object) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    return str(v).replace("|", "\\|").replace("\n", " ")


def comparison_markdown(
    df: pd.DataFrame,
    heading: str = "Comparison with the paper",
    *,
    include_not_run: bool = True,
) -> str:
    """Render a :func:`compare` frame as Markdown: verdict counts, then one table per table.

    Args:
        df: output of :func:`compare`.
        heading: level-2 heading.
        include_not_run: list ``not-run`` rows too (they are always counted).
    """
    scale = df.attrs.get("scale") or (df["scale"].iloc[0] if len(df) else "?")
    counts = df["verdict"].value_counts() if len(df) else pd.Series(dtype=int)
    summary = ", ".join(f"{v} {int(counts.get(v, 0))}" for v in VERDICTS if counts.get(v, 0))
    lines = [f"## {heading} (scale: {scale})", "", f"{len(df)} rows: {summary or 'none'}.", ""]
    if counts.get("not-run", 0):
        lines += [
            "not-run: the paper reports a number we have none for (the cell was not run at this "
            "scale, or the method is one we do not run); it says nothing about reproduction.",
            "",
        ]
    if scale not in COMPARABLE_SCALES and len(df):
        lines += [
            f"At scale `{scale}` numbers are not expected to match the paper: "
            "deltas are informational.",
            "",
        ]
    header = (
        "| dataset | architecture | method | quantity | setting | reported | ours | ci_low "
        "| ci_high | delta | tol | verdict | note |"
    )
    shown = df if include_not_run else df[df["verdict"] != "not-run"]
    for table, sub in shown.groupby("table", sort=True, dropna=False):
        lines += [f"### {_cell(table)}", "", header, "|" + "---|" * 13]
        for _, r in sub.iterrows():
            lines.append(
                f"| {_cell(r['dataset'])} | {_cell(r['architecture'])} | {_cell(r['method'])} "
                f"| {_cell(r['quantity'])} | {_setting(r)} | {_num(r['reported'])} "
                f"| {_num(r['ours'])} | {_num(r['ours_ci_low'])} | {_num(r['ours_ci_high'])} "
                f"| {_signed(r['delta'])} | {_num(r['tolerance'])} "
                f"| {r['verdict']} | {_cell(r['ours_note'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_comparison(
    df: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    heading: str = "Comparison with the paper",
    include_not_run: bool = True,
) -> dict[str, Path]:
    """Write ``comparison.csv`` and ``comparison.md`` into ``out_dir`` atomically.

    The CSV always holds every row; ``include_not_run`` only affects the Markdown.

    Returns:
        ``{"csv": path, "md": path}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "comparison.csv", out / "comparison.md"
    atomic_write_text(csv_path, df.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(
        md_path,
        comparison_markdown(df, heading=heading, include_not_run=include_not_run),
    )
    return {"csv": csv_path, "md": md_path}
