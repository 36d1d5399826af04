"""Row builders of the tables: one function per paper table (and the extra tables)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from qac.experiments import ALIGNMENT_POLICIES, ALL_AVER
from qac.paper.reference import normalize_frame
from qac.report._common import is_missing, skip_reason
from qac.report.captions import sweep_subset_note
from qac.report.tables.columns import (
    ALL_AVER_ACC,
    ALL_AVER_CAL,
    TABLE5_K,
    TABLE8_T,
    delta,
)
from qac.report.tables.lookup import (
    NO_SAMPLE,
    Lookup,
    add_samples,
    cell_sort_key,
    paper_note,
    status,
)

__all__ = [
    "lit_rows",
    "table_results",
    "table3",
    "table4",
    "table5",
    "table6",
    "table8",
    "table8_sample_note",
    "case4_timesteps",
    "extra_table",
]

_SNN = {"quantity": "snn_acc"}
_TABLE3_CAL = ("base", "base+cal")
Row = dict[str, Any]


def lit_rows(name: str, ref: pd.DataFrame | None, cell: tuple[str, str] | None) -> list[Row]:
    """The paper's non-QAC rows: one per (method, T) ``snn_acc`` number, in printed order."""
    if ref is None:
        return []
    sub = ref[(ref["table"] == name) & (ref["method"] != "QAC")]
    if cell is not None:
        sub = sub[(sub["dataset"] == cell[0]) & (sub["architecture"] == cell[1])]
    out = []
    for _, r in sub[sub["quantity"] == "snn_acc"].iterrows():
        ann = sub[
            (sub["quantity"] == "ann_acc")
            & (sub["method"] == r["method"])
            & (sub["dataset"] == r["dataset"])
            & (sub["architecture"] == r["architecture"])
        ]["value"]
        typ, note = paper_note(r["note"])
        out.append(
            {
                "dataset": r["dataset"],
                "architecture": r["architecture"],
                "method": r["method"],
                "type": typ,
                "source": "paper",
                "time_steps": float(r["T"]) if not is_missing(r["T"]) else math.nan,
                "ann_acc": float(ann.iloc[0]) if len(ann) else math.nan,
                "snn_acc": float(r["value"]),
                "status": "reported",
                "paper_note": note,
            }
        )
    return out


def _paper_qac_row(name: str, rl: Lookup, ds: str, ar: str, paper: Mapping[str, float]) -> Row:
    """The paper's own QAC row of a cell (its numbers, its cleaned note)."""
    typ, note = paper_note(rl.note(name, ds, ar, "QAC", "snn_acc"))
    return {
        "dataset": ds,
        "architecture": ar,
        "method": "QAC (paper)",
        "type": typ,
        "source": "paper",
        **paper,
        "status": "reported",
        "paper_note": note,
    }


def _ours_row(ds: str, ar: str, ours, paper, reason: str | None, **extra: Any) -> Row:
    """The "QAC (ours)" row: our values (blank when skipped) beside the paper's and the deltas."""
    if reason:
        ours = dict.fromkeys(ours, math.nan)
    row = {
        "dataset": ds,
        "architecture": ar,
        "method": "QAC (ours)",
        **extra,
        "source": "ours",
        **ours,
        "status": status(reason, ours),
    }
    for c in ours:
        row[f"{c}_paper"] = paper[c]
        row[f"{c}_delta"] = delta(ours[c], paper[c])
    return row


def table_results(name, mine: Lookup, ref, rl: Lookup, skipped, cells) -> list[Row]:
    """Tables 1, 2, 7: literature rows, the paper's QAC row, our QAC row per cell."""
    rows: list[Row] = []
    quantities = {"time_steps": "avg_timesteps", "ann_acc": "ann_acc", "snn_acc": "snn_acc"}
    for ds, ar in cells:
        rows += lit_rows(name, ref, (ds, ar))
        paper = {c: rl.get(name, ds, ar, "QAC", q) for c, q in quantities.items()}
        if any(not is_missing(v) for v in paper.values()):
            rows.append(_paper_qac_row(name, rl, ds, ar, paper))
        reason = skip_reason(skipped, [name], ds, ar)
        ours = {c: mine.get(name, ds, ar, "QAC", q) for c, q in quantities.items()}
        row = _ours_row(ds, ar, ours, paper, reason)
        all_aver = {"alignment": ALL_AVER}
        row[ALL_AVER_ACC] = (
            math.nan if reason else mine.get(name, ds, ar, "QAC", **_SNN, **all_aver)
        )
        samples = {q: mine.sample(name, ds, ar, "QAC", q) for q in ("ann_acc", "snn_acc")}
        samples[ALL_AVER_ACC] = mine.sample(name, ds, ar, "QAC", **_SNN, **all_aver)
        add_samples(row, samples, bool(reason))
        rows.append(row)
    return rows


def table6(mine: Lookup, ref, rl: Lookup, skipped, cells) -> list[Row]:
    """Table 6: the paper's direct-training rows, then per QAC cell paper and ours."""
    rows: list[Row] = []
    datasets = list(dict.fromkeys(c[0] for c in cells))
    if ref is not None:
        datasets += [d for d in ref[ref["table"] == "table6"]["dataset"].unique()]
    datasets = sorted(dict.fromkeys(datasets), key=lambda d: cell_sort_key((d, ""))[:2])
    lit = lit_rows("table6", ref, None)
    for ds in datasets:
        rows += [r for r in lit if r["dataset"] == ds]
        for cds, ar in cells:
            if cds != ds:
                continue
            paper = {
                "time_steps": rl.get("table6", ds, ar, "QAC", "avg_timesteps"),
                "snn_acc": rl.get("table6", ds, ar, "QAC", "snn_acc"),
            }
            if any(not is_missing(v) for v in paper.values()):
                rows.append(_paper_qac_row("table6", rl, ds, ar, paper))
            reason = skip_reason(skipped, ["table6"], ds, ar)
            ours = {
                "time_steps": mine.get("table6", ds, ar, "QAC", "avg_timesteps"),
                "snn_acc": mine.get("table6", ds, ar, "QAC", "snn_acc"),
            }
            row = _ours_row(ds, ar, ours, paper, reason, type="ANN-to-SNN")
            add_samples(
                row, {"snn_acc": mine.sample("table6", ds, ar, "QAC", **_SNN)}, bool(reason)
            )
            rows.append(row)
    return rows


def _wide_row(
    name: str,
    ds: str,
    ar: str,
    columns: Mapping[str, tuple[float, float]],
    skipped: pd.DataFrame | None,
    samples: Mapping[str, tuple[float, float, float]] | None = None,
    **extra: Any,
) -> Row:
    """One row of a wide table: for every column name its (ours, paper) pair, and for the
    accuracy columns in ``samples`` their (n, 95 % low, 95 % high)."""
    reason = skip_reason(skipped, [name], ds, ar)
    row: Row = {"dataset": ds, "architecture": ar, **extra}
    ours_vals = {}
    for col, (ours, paper) in columns.items():
        if reason:
            ours = math.nan
        ours_vals[col] = ours
        row[col] = ours
        row[f"{col}_paper"] = paper
        row[f"{col}_delta"] = delta(ours, paper)
    row["status"] = status(reason, ours_vals)
    add_samples(row, samples or {}, bool(reason))
    return row


def _supplement(
    row: Row, mine: Lookup, table: str, columns: Mapping[str, Mapping[str, Any]], skipped: bool
) -> None:
    """Columns of ours without a paper counterpart (``{column: lookup keys}``), with their
    intervals; they do not change the row's status."""
    for col, keys in columns.items():
        row[col] = (
            math.nan
            if skipped
            else mine.get(table, row["dataset"], row["architecture"], "QAC", **_SNN, **keys)
        )
        sample = mine.sample(table, row["dataset"], row["architecture"], "QAC", **_SNN, **keys)
        add_samples(row, {col: sample}, skipped)


def _qac_columns(
    mine: Lookup, rl: Lookup, table: str, ds: str, ar: str, key: str, values
) -> tuple[dict, dict]:
    """Ours and the paper's QAC ``snn_acc`` per value of ``key``, and our per-image samples."""
    cols = {
        v: (
            mine.get(table, ds, ar, "QAC", "snn_acc", **{key: v}),
            rl.get(table, ds, ar, "QAC", "snn_acc", **{key: v}),
        )
        for v in values
    }
    samples = {v: mine.sample(table, ds, ar, "QAC", **_SNN, **{key: v}) for v in cols}
    return cols, samples


def table3(mine: Lookup, rl: Lookup, skipped, cells) -> list[Row]:
    rows = []
    for ds, ar in cells:
        cols, samples = _qac_columns(mine, rl, "table3", ds, ar, "calibration", _TABLE3_CAL)
        row = _wide_row("table3", ds, ar, cols, skipped, samples)
        row["gain"] = delta(row["base+cal"], row["base"])
        row["gain_paper"] = delta(row["base+cal_paper"], row["base_paper"])
        extra = {
            ALL_AVER: {"alignment": ALL_AVER, "calibration": "base"},
            ALL_AVER_CAL: {"alignment": ALL_AVER, "calibration": "base+cal"},
        }
        _supplement(row, mine, "table3", extra, row["status"].startswith("skipped"))
        rows.append(row)
    return rows


def table4(mine: Lookup, rl: Lookup, skipped, cells) -> list[Row]:
    rows = []
    for ds, ar in cells:
        cols, samples = _qac_columns(mine, rl, "table4", ds, ar, "alignment", ALIGNMENT_POLICIES)
        rows.append(_wide_row("table4", ds, ar, cols, skipped, samples))
    return rows


def case4_timesteps(mine_df: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """Average T of every case-4 ANN (table ``fig2``), per (dataset, architecture)."""
    if mine_df is None or "case" not in mine_df.columns:
        return {}
    sub = mine_df[
        (mine_df["table"] == "fig2")
        & (mine_df["quantity"] == "avg_timesteps")
        & (pd.to_numeric(mine_df["case"], errors="coerce") == 4)
    ]
    return {
        (d, a): float(v)
        for (d, a), v in sub.groupby(["dataset", "architecture"])["value"].mean().items()
    }


def _first(lookup: Lookup, tables: tuple[str, ...], ds: str, ar: str) -> float:
    """The first average T of the cell's QAC model among ``tables`` (nan when none)."""
    for table in tables:
        v = lookup.get(table, ds, ar, "QAC", "avg_timesteps")
        if not is_missing(v):
            return v
    return math.nan


def table5(mine: Lookup, rl: Lookup, skipped, cells, case4_t) -> list[Row]:
    rows = []
    for ds, ar in cells:
        cols = {
            f"k{k}": (
                mine.get("table5", ds, ar, "QAC", "snn_acc", k=k),
                rl.get("table5", ds, ar, "QAC", "snn_acc", k=k),
            )
            for k in TABLE5_K
        }
        samples = {f"k{k}": mine.sample("table5", ds, ar, "QAC", **_SNN, k=k) for k in TABLE5_K}
        row = _wide_row("table5", ds, ar, cols, skipped, samples)
        reason = skip_reason(skipped, ["table5"], ds, ar)
        _supplement(row, mine, "table5", {ALL_AVER: {"alignment": ALL_AVER}}, bool(reason))
        # our base T (k = 1): the Case-4 model's average timesteps (calibration keeps T)
        avg_t = _first(mine, ("table1", "table7", "table2", "table6"), ds, ar)
        if is_missing(avg_t):
            avg_t = case4_t.get((ds, ar), math.nan)
        row["avg_timesteps"] = math.nan if reason else avg_t
        row["avg_timesteps_paper"] = _first(rl, ("table1", "table7", "table2"), ds, ar)
        rows.append(row)
    return rows


def table8(mine: Lookup, rl: Lookup, skipped, cells, Ls) -> list[Row]:
    rows = []
    for ds, ar in cells:
        for L in Ls:
            ann = mine.get("table8", ds, ar, "QCFS", "ann_acc", L=L)
            for method in ("QCFS", "QCFS+aver"):
                cols = {
                    f"T{t}": (
                        mine.get("table8", ds, ar, method, "snn_acc", T=t, L=L),
                        rl.get("table8", ds, ar, method, "snn_acc", T=t, L=L),
                    )
                    for t in TABLE8_T
                }
                samples = {
                    f"T{t}": mine.sample("table8", ds, ar, method, **_SNN, T=t, L=L)
                    for t in TABLE8_T
                }
                samples["ann_acc"] = mine.sample("table8", ds, ar, "QCFS", "ann_acc", L=L)
                row = _wide_row("table8", ds, ar, cols, skipped, samples, L=L, method=method)
                row["ann_acc"] = math.nan if row["status"].startswith("skipped") else ann
                # n: the T sweep's test images (evaluation.sweep_limit may make them fewer than
                # the ANN's: table8_sample_note says so in the caption)
                sweep_n = [s[0] for k, s in samples.items() if k != "ann_acc"]
                sweep_n = [n for n in sweep_n if not is_missing(n)]
                if sweep_n and not row["status"].startswith("skipped"):
                    row["n"] = max(sweep_n)
                rows.append(row)
    return rows


def table8_sample_note(mine_df: pd.DataFrame | None) -> str | None:
    """A sentence for Table 8's caption when the T sweeps ran on fewer test images than the
    QCFS ANN accuracies (``evaluation.sweep_limit``); None when they share their test set."""
    if mine_df is None or "n" not in mine_df.columns or not len(mine_df):
        return None
    sub = mine_df[mine_df["table"] == "table8"]

    def sizes(quantity: str) -> list[int]:
        ns = sub.loc[sub["quantity"] == quantity, "n"]
        return sorted({int(n) for n in ns if not is_missing(n)})

    ann, sweep = sizes("ann_acc"), sizes("snn_acc")
    if not sweep or not ann or ann == sweep:
        return None
    return sweep_subset_note(sweep, ann)


def _models(mine_df: pd.DataFrame, table: str) -> list[tuple[Any, ...]]:
    sub = mine_df[mine_df["table"] == table]
    case = sub["case"] if "case" in sub.columns else pd.Series([pd.NA] * len(sub))
    keys = zip(sub["dataset"], sub["architecture"], sub["method"], case, sub["L"], strict=True)
    return list(dict.fromkeys(tuple(None if is_missing(v) else v for v in k) for k in keys))


def _model_key(m: tuple[Any, ...]) -> tuple[Any, ...]:
    return (*cell_sort_key((m[0], m[1])), str(m[2]), str(m[3]), str(m[4]))


def _pick(sub: pd.DataFrame, q: str, cal: str | None = None) -> float:
    s = sub[sub["quantity"] == q]
    if cal is not None:
        s = s[s["calibration"] == cal]
    return float(s["value"].mean()) if len(s) else math.nan


def _sample(sub: pd.DataFrame, q: str) -> tuple[float, float, float]:
    s = sub[sub["quantity"] == q]
    if len(s) != 1 or "n" not in s.columns or is_missing(s["n"].iloc[0]):
        return NO_SAMPLE
    n, lo, hi = (float(s[c].iloc[0]) for c in ("n", "ci_low", "ci_high"))
    return n, lo, hi


def _energy_rows(sub: pd.DataFrame, base: Row, reason: str | None) -> list[Row]:
    rows = []
    for cal in sorted(set(sub["calibration"].dropna())) or ["base"]:
        vals = {
            q: _pick(sub, q, cal)
            for q in ("firing_rate", "energy_pj_per_sample", "ann_energy_pj_per_sample")
        }
        if reason:
            vals = dict.fromkeys(vals, math.nan)
        e, a = vals["energy_pj_per_sample"], vals["ann_energy_pj_per_sample"]
        ratio = a / e if not (is_missing(e) or is_missing(a)) and e > 0 else math.nan
        rows.append(
            {
                **base,
                "calibration": cal,
                **vals,
                "energy_ratio": ratio,
                "status": status(reason, vals),
            }
        )
    return rows


def extra_table(name: str, mine_df: pd.DataFrame | None, skipped, cells) -> list[Row]:
    """The extra tables ``energy`` and ``exactness``: one row per model of ours."""
    rows: list[Row] = []
    if mine_df is None:
        mine_df = normalize_frame(pd.DataFrame(columns=["table", "value"]))
        mine_df["case"] = pd.Series(dtype="Int64")
    models = _models(mine_df, name)
    have = {(m[0], m[1]) for m in models}
    models += [(ds, ar, None, None, None) for ds, ar in cells if (ds, ar) not in have]
    for ds, ar, method, case, L in sorted(models, key=_model_key):
        sub = mine_df[
            (mine_df["table"] == name)
            & (mine_df["dataset"] == ds)
            & (mine_df["architecture"] == ar)
        ]
        if method is not None:
            sub = sub[sub["method"] == method]
        if case is not None and "case" in sub.columns:
            sub = sub[sub["case"] == case]
        if L is not None:
            sub = sub[sub["L"] == L]
        reason = skip_reason(skipped, [name], ds, ar)
        base = {"dataset": ds, "architecture": ar, "method": method, "case": case, "L": L}
        if name == "energy":
            rows += _energy_rows(sub, base, reason)
            continue
        vals = {"ann_acc": _pick(sub, "ann_acc"), "snn_acc": _pick(sub, "snn_acc")}
        if reason:
            vals = dict.fromkeys(vals, math.nan)
        row = {
            **base,
            **vals,
            "difference": delta(vals["snn_acc"], vals["ann_acc"]),
            "status": status(reason, vals),
        }
        add_samples(row, {q: _sample(sub, q) for q in vals}, bool(reason))
        rows.append(row)
    return rows
