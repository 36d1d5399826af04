"""Captions: what the paper reports for a table/figure (numbers computed from the reference
data) and how to read our numbers beside it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from qac.paper.reference import load_paper_claims, load_reference, normalize_frame
from qac.report._common import ReportInputError, arch_label, cell_label, dataset_label

__all__ = ["caption", "with_scale_note", "sweep_subset_note", "FIGURE_CELLS", "SWEEP_CAPTIONS"]

#: Paper figure -> the (dataset, architecture) it shows (Sec. 7.8, Figs. 5-10; Fig. 1).
FIGURE_CELLS: dict[str, tuple[str, str]] = {
    "fig1": ("cifar10", "vgg16"),
    "fig5": ("cifar10", "resnet18"),
    "fig6": ("cifar100", "resnet18"),
    "fig7": ("cifar10", "resnet20"),
    "fig8": ("cifar100", "resnet20"),
    "fig9": ("cifar100", "vgg16"),
    "fig10": ("imagenet", "vgg16"),
}

_READ = (
    "Columns X, X_paper and X_delta hold our value, the paper's and ours minus the paper's, "
    "X_ci_low and X_ci_high the 95 % Wilson interval of our accuracy X over n test images "
    "(about +-3 pp at 1,000 images, +-1 pp at 10,000); a cell of ours not run at this scale or "
    "missing is empty and status says why."
)
_ALL_AVER_NOTE = (
    " (averaging at every layer boundary: the SNN equal to its quantized ANN, so "
    "aver+aver+aver - aver+aver is the part of the SNN-ANN gap due to running each layer at "
    "its own T)."
)


def _v(ref: pd.DataFrame, **sel: Any) -> float:
    sub = ref
    for c, want in sel.items():
        sub = sub[sub[c].isna()] if want is None else sub[sub[c] == want]
    return float(sub["value"].iloc[0]) if len(sub) else math.nan


def _pct(v: float) -> str:
    return f"{v:.2f} %"


def _claim_numbers(claim_id: str) -> list[float]:
    try:
        for c in load_paper_claims():
            if c.get("id") == claim_id:
                return [float(x) for x in c.get("numbers") or []]
    except (OSError, ValueError):
        pass
    return []


def _results_caption(name: str, ref: pd.DataFrame) -> str:
    sub = ref[ref["table"] == name]
    dataset = sub["dataset"].iloc[0] if len(sub) else "?"
    parts = []
    for ar in dict.fromkeys(sub[sub["method"] == "QAC"]["architecture"]):
        acc = _v(sub, architecture=ar, method="QAC", quantity="snn_acc")
        t = _v(sub, architecture=ar, method="QAC", quantity="avg_timesteps")
        ann = _v(sub, architecture=ar, method="QAC", quantity="ann_acc")
        parts.append(
            f"{_pct(acc)} at {t:.2f} average timesteps on {arch_label(ar)} (ANN {ann:.2f})"
        )
    lit = sub[(sub["method"] != "QAC") & (sub["quantity"] == "snn_acc")]
    lit_txt = ""
    if len(lit):
        lit_txt = (
            f" The literature conversion methods listed use T = {int(lit['T'].min())}-"
            f"{int(lit['T'].max())} for {lit['value'].min():.2f}-{lit['value'].max():.2f} %."
        )
    return (
        f"Paper (Table {name[5:]}, {dataset_label(dataset)}, Case 4 after calibration): QAC "
        f"reaches {'; '.join(parts)}.{lit_txt} Our 'QAC (ours)' row per architecture is our "
        "Case-4 model after calibration (setting aver+aver,cal) beside the paper's QAC row; "
        "snn_acc_aver+aver+aver is that model with setting aver+aver+aver,cal"
        + _ALL_AVER_NOTE
        + " "
        + _READ
    )


def _table3(ref: pd.DataFrame) -> str:
    sub = ref[ref["table"] == "table3"]
    piv = sub.pivot_table(
        index=["dataset", "architecture"], columns="calibration", values="value", aggfunc="mean"
    )
    gain = (piv["base+cal"] - piv["base"]).dropna()
    cifar = gain[[d.startswith("cifar") for d, _ in gain.index]]
    inet = gain[[d == "imagenet" for d, _ in gain.index]]
    txt = (
        f"Paper (Table 3): calibrating v0 and the threshold (Base+CAL vs Base) changes QAC's "
        f"SNN accuracy by {cifar.mean():+.2f} pp on average over the {len(cifar)} CIFAR cells "
        f"(from {cifar.min():+.2f} to {cifar.max():+.2f})"
    )
    if len(inet):
        txt += " and by " + ", ".join(
            f"{v:+.2f} pp on {cell_label(d, a)}" for (d, a), v in inet.items()
        )
    return (
        txt + ". Ours: the Case-4 SNN before (setting aver+aver) and after calibration "
        "(aver+aver,cal); gain = Base+CAL - Base; aver+aver+aver and aver+aver+aver+cal: the "
        "same before and after calibration with averaging everywhere" + _ALL_AVER_NOTE + " " + _READ
    )


def _table4(ref: pd.DataFrame) -> str:
    sub = ref[(ref["table"] == "table4") & (ref["quantity"] == "snn_acc")]
    piv = sub.pivot_table(
        index=["dataset", "architecture"], columns="alignment", values="value", aggfunc="mean"
    )
    best = piv.idxmax(axis=1)
    means = piv.mean().sort_values()
    return (
        f"Paper (Table 4): averaging for both expansion and reduction (aver+aver) is the best "
        f"temporal alignment in {int((best == 'aver+aver').sum())}/{len(piv)} cells "
        f"(mean {means.get('aver+aver', math.nan):.2f} %), and {means.index[0]} is the worst "
        f"on average ({means.iloc[0]:.2f} %). Ours: the uncalibrated Case-4 SNN converted "
        "with each alignment (settings repl+aver, repl+trunc, aver+trunc, aver+aver). " + _READ
    )


def _k_stats(ref: pd.DataFrame) -> tuple[pd.Series, int, int]:
    sub = ref[(ref["table"] == "table5") & (ref["quantity"] == "snn_acc")]
    piv = sub.pivot_table(
        index=["dataset", "architecture"], columns="k", values="value", aggfunc="mean"
    )
    gain = piv[4] - piv[1] if 4 in piv.columns and 1 in piv.columns else pd.Series(dtype=float)
    later = [k for k in piv.columns if k > 4]
    flat = int(sum((piv[later].sub(piv[4], axis=0).abs() < 1e-9).all(axis=1))) if later else 0
    return gain, flat, len(piv)


def _table5(ref: pd.DataFrame, figure: bool = False) -> str:
    gain, flat, n = _k_stats(ref)
    head = "Paper (Fig. 3 / Table 5)" if figure else "Paper (Table 5)"
    txt = (
        f"{head}: multiplying every layer's timesteps by k raises accuracy from T to 4T by "
        f"{gain.mean():+.2f} pp on average (from {gain.min():+.2f} to {gain.max():+.2f}); from "
        f"4T to 6T the accuracy is unchanged in {flat}/{n} curves. "
    )
    if figure:
        return txt + (
            "Ours (solid) is the uncalibrated Case-4 SNN at settings aver+aver,k=K; the paper "
            "(dashed) is drawn beside it; a panel without our results says why."
        )
    return txt + (
        "Ours: the uncalibrated Case-4 SNN at settings aver+aver (k1) and aver+aver,k=K; "
        "avg_timesteps is our base T beside the paper's Table 1/2/7 value; aver+aver+aver "
        "(k = 1) is the same model with averaging everywhere" + _ALL_AVER_NOTE + " " + _READ
    )


def _table6(ref: pd.DataFrame) -> str:
    sub = ref[ref["table"] == "table6"]
    qac = sub[sub["method"] == "QAC"]
    ts = qac[qac["quantity"] == "avg_timesteps"]
    lit = sub[(sub["method"] != "QAC") & (sub["quantity"] == "snn_acc")]
    ex = []
    for ds in dict.fromkeys(ts["dataset"]):
        row = ts[ts["dataset"] == ds].sort_values("value").iloc[0]
        acc = _v(qac, dataset=ds, architecture=row["architecture"], quantity="snn_acc")
        ex.append(f"{_pct(acc)} at {row['value']:.2f} on {cell_label(ds, row['architecture'])}")
    return (
        f"Paper (Table 6): QAC needs {ts['value'].min():.2f}-{ts['value'].max():.2f} average "
        f"timesteps in its {len(ts)} cells (e.g. {'; '.join(ex)}), while the directly trained "
        f"(surrogate-gradient) SNNs listed use T = {int(lit['T'].min())}-{int(lit['T'].max())} "
        f"for {lit['value'].min():.2f}-{lit['value'].max():.2f} %. Our rows are the calibrated "
        "Case-4 results of Tables 1/2/7 (setting aver+aver,cal). " + _READ
    )


def _table8(ref: pd.DataFrame) -> str:
    sub = ref[(ref["table"] == "table8") & (ref["quantity"] == "snn_acc")]
    piv = sub.pivot_table(
        index=["dataset", "architecture", "L", "T"], columns="method", values="value"
    )
    diff = (piv["QCFS+aver"] - piv["QCFS"]).dropna()
    T = diff.index.get_level_values("T")
    small = diff[(T >= 2) & (T <= 4)]
    t1 = diff[T == 1]
    ds, ar, L, t = diff.idxmax()
    return (
        f"Paper (Table 8): temporal averaging (QCFS+aver) beats plain QCFS at T = 2-4 in "
        f"{int((small > 0).sum())}/{len(small)} cells, by up to {diff.max():.2f} pp "
        f"({cell_label(ds, ar)}, L={L}, T={t}); at T = 1 the two agree within "
        f"{t1.abs().max():.2f} pp in all {len(t1)} cells. Ours: each QCFS model (qcfs-L<L>) "
        "swept over T without and with averaging; ann_acc is our QCFS ANN. " + _READ
    )


#: The captions that end with :func:`sweep_subset_note` when Table 8's T sweeps ran on a subset.
SWEEP_CAPTIONS: tuple[str, ...] = ("table8", "fig_table8")


def sweep_subset_note(sweep: int | Iterable[int], ann: int | Iterable[int] | None = None) -> str:
    """The sentence saying that Table 8's T sweeps ran on a class-balanced subset of ``sweep``
    test images (``evaluation.sweep_limit``) while the QCFS ANN accuracies are over ``ann``
    (None: the whole test set); several sizes are joined with "or"."""

    def text(ns: int | Iterable[int]) -> str:
        values = [ns] if isinstance(ns, int) else sorted(set(ns))
        return " or ".join(f"{int(n):,}" for n in values)

    over = "the whole test set" if ann is None else f"{text(ann)} test images"
    return (
        f"The T sweeps ran on a class-balanced subset of {text(sweep)} test images (n, and "
        f"the 95 % intervals at each T); ann_acc and its interval are over {over}."
    )


def _fig1(ref: pd.DataFrame) -> str:
    t = _v(
        ref,
        table="table1",
        dataset="cifar10",
        architecture="vgg16",
        method="QAC",
        quantity="avg_timesteps",
    )
    return (
        "Paper (Fig. 1): the quantization bit-width of every layer of a Case-4 VGG-16 on "
        "CIFAR-10 and the matching SNN timesteps; the text gives no per-layer numbers, only "
        f"the resulting average of {t:.2f} timesteps (Table 1). Ours: bars = our per-layer "
        "bit-width (left axis), line = our per-layer timesteps T (right axis)."
    )


def _fig2() -> str:
    within = _claim_numbers("sec5.1-cases-within-1pct")
    rng = _claim_numbers("sec5.1-case12-timesteps-10-to-20")
    w = f"{within[0]:g} %" if within else "1 %"
    r = f"{rng[0]:g} to over {rng[1]:g}" if len(rng) >= 2 else "10 to over 20"
    return (
        f"Paper (Fig. 2 / Fig. 11, Sec. 5.1): the ANN accuracies of the four quantization-"
        f"parameter cases lie within {w}; cases 1 and 2 need {r} average timesteps, case 3 "
        "yields INF bit-width and timesteps, and case 4 the fewest (the figure prints no "
        "numbers). Ours: bars = average bit-width and average T per case (left axis), grey "
        "line = ANN accuracy (right axis); a hatched 'INF' bar marks an infinite average, and a "
        "panel without results says why."
    )


def _figs5_10(ref: pd.DataFrame, names: list[str]) -> str:
    shown = []
    for n in names:
        ds, ar = FIGURE_CELLS[n]
        t = math.nan
        for table in ("table1", "table7", "table2"):
            t = _v(
                ref,
                table=table,
                dataset=ds,
                architecture=ar,
                method="QAC",
                quantity="avg_timesteps",
            )
            if not math.isnan(t):
                break
        shown.append(
            f"Fig. {n[3:]} {cell_label(ds, ar)}"
            + (f" (paper's Case-4 average T {t:.2f})" if not math.isnan(t) else "")
        )
    return (
        "Paper (Sec. 7.8): the per-layer bit-width and timesteps of the four quantization-"
        f"parameter cases - {'; '.join(shown)}; the figures print no per-layer numbers. "
        "Ours: per-layer T (top) and bit-width (bottom) of each case's trained ANN; infinite "
        "values (case 3) are marked 'INF' at the top edge, and a skipped panel says why."
    )


def caption(
    name: str, reference: pd.DataFrame | None = None, *, sample_note: str | None = None
) -> str:
    """2-4 sentences: what the paper reports for ``name`` (numbers computed from the
    reference data) and how to read our numbers beside it.

    ``name``: ``table1`` ... ``table8``, ``energy``, ``exactness``, ``fig1``, ``fig2``,
    ``fig3``, ``figs5_10``, ``fig5`` ... ``fig10``, ``fig_table8``. ``sample_note`` (e.g.
    :func:`sweep_subset_note`) ends the captions of :data:`SWEEP_CAPTIONS` (Table 8 and its
    figure) and no other.
    """
    text = _caption(name, reference)
    if sample_note and name in SWEEP_CAPTIONS:
        text = f"{text.rstrip()} {sample_note.strip()}"
    return text


def _caption(name: str, reference: pd.DataFrame | None) -> str:
    ref = load_reference() if reference is None else normalize_frame(reference)
    if name in ("table1", "table2", "table7"):
        return _results_caption(name, ref)
    builders = {
        "table3": lambda: _table3(ref),
        "table4": lambda: _table4(ref),
        "table5": lambda: _table5(ref),
        "table6": lambda: _table6(ref),
        "table8": lambda: _table8(ref),
        "fig_table8": lambda: (
            "Table 8 drawn as accuracy against T (log2 axis), QCFS solid and QCFS+aver dashed, "
            "one column per L; ours (with 95 % bands) and the paper's in separate rows, each on "
            "its own axis. " + _table8(ref)
        ),
        "fig1": lambda: _fig1(ref),
        "fig2": _fig2,
        "fig11": _fig2,
        "fig3": lambda: _table5(ref, figure=True),
        "figs5_10": lambda: _figs5_10(ref, [f"fig{i}" for i in range(5, 11)]),
        "energy": lambda: (
            "Ours only (the paper reports no energy numbers): average firing rate and the "
            "energy per sample of our SNN (4.6 pJ per MAC, 0.9 pJ per AC, 45 nm) beside the "
            "ANN's, before (base) and after (base+cal) calibration. energy_ratio = ANN / SNN "
            "energy; values above 1 mean the SNN is cheaper."
        ),
        "exactness": lambda: (
            "Ours only (Theorem of Sec. 4.1): with averaging alignment at every layer "
            "boundary (aver+aver+aver, float64) the SNN must reproduce its quantized ANN "
            "exactly. difference = SNN - ANN accuracy and should be 0.00 (claim C1)."
        ),
    }
    if name in builders:
        return builders[name]()
    if name in FIGURE_CELLS and name != "fig1":
        return _figs5_10(ref, [name])
    raise ReportInputError(f"no caption for {name!r}")


def with_scale_note(caption: str, notes: Mapping[str, str]) -> str:
    """``caption`` followed by what our numbers are, once: ``notes`` maps a dataset to its
    scale note (:func:`qac.report.tables.make_table`'s ``attrs["notes"]``); datasets with the
    same note share one sentence, e.g. "Our numbers (CIFAR-10): CPU scale: ..."."""
    by_text: dict[str, list[str]] = {}
    for ds, text in notes.items():
        if text:
            by_text.setdefault(text.strip().rstrip("."), []).append(dataset_label(ds))
    parts = [f"Our numbers ({', '.join(dss)}): {text}." for text, dss in by_text.items()]
    return " ".join([caption.strip(), *parts]).strip() if parts else caption
