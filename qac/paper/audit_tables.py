"""The audit's checks on the paper's tables (:mod:`qac.paper.audit`): each takes the reference
frame and returns the :class:`Finding` s where two tables, or a table and its own pattern,
disagree.  Severities as in :mod:`qac.paper.audit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

__all__ = [
    "Severity",
    "Finding",
    "check_table5_T_vs_table3",
    "check_table4_aver_aver_vs_base",
    "check_table4_other_alignment_equals_base",
    "check_table4_identical_alignments",
    "check_calibration_lowers",
    "check_headline_vs_table3",
    "check_table6_vs_headline",
    "check_snn_exceeds_ann",
    "check_ann_equals_snn_value",
    "check_table5_monotonic",
    "check_table8_aver_vs_qcfs",
    "check_copied_literature_rows",
]


Severity = Literal["error", "warning", "info"]
_EPS = 1e-9
_HEADLINE_TABLES = ("table1", "table2", "table7")


@dataclass(frozen=True)
class Finding:
    """One place where the paper disagrees with itself.

    Attributes:
        id: stable identifier of the check (plus a suffix when a check fires per item).
        where: tables / sections involved.
        description: one-paragraph statement with the key numbers.
        values: the numbers behind the finding.
        severity: ``error``, ``warning`` or ``info``.
    """

    id: str
    where: str
    description: str
    values: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "warning"


# ----------------------------------------------------------------------------- helpers


def _cells(ref: pd.DataFrame, **spec: Any) -> dict[tuple[str, str], float]:
    """``{(dataset, architecture): value}`` for the rows matching ``spec`` (mean if repeated)."""
    mask = pd.Series(True, index=ref.index)
    for col, want in spec.items():
        if isinstance(want, list | tuple):
            mask &= ref[col].isin(list(want)).to_numpy()
        else:
            mask &= (ref[col] == want).fillna(False).to_numpy(dtype=bool)
    df = ref[mask]
    if df.empty:
        return {}
    g = df.groupby(["dataset", "architecture"])["value"].mean()
    return {(str(d), str(a)): float(v) for (d, a), v in g.items()}


def _lab(cell: tuple[str, str]) -> str:
    return f"{cell[1]}/{cell[0]}"


def _eq(a: float, b: float) -> bool:
    return abs(a - b) <= _EPS


_Sources = list[tuple[str, str, dict[tuple[str, str], float]]]


def _qac_snn_sources(ref: pd.DataFrame) -> _Sources:
    """Every named QAC SNN 'column' of the paper: (label, kind, cells)."""
    out: list[tuple[str, str, dict[tuple[str, str], float]]] = []
    for cal in ("base", "base+cal"):
        out.append(
            (
                f"Table 3 {cal}",
                "table3",
                _cells(ref, table="table3", quantity="snn_acc", calibration=cal),
            )
        )
    for al in sorted(ref.loc[ref["table"] == "table4", "alignment"].dropna().unique()):
        out.append(
            (
                f"Table 4 {al}",
                "table4",
                _cells(ref, table="table4", quantity="snn_acc", alignment=al),
            )
        )
    for k in sorted(ref.loc[ref["table"] == "table5", "k"].dropna().unique()):
        out.append(
            (
                f"Table 5 {int(k)}T" if k != 1 else "Table 5 T",
                "table5",
                _cells(ref, table="table5", quantity="snn_acc", k=int(k)),
            )
        )
    for t in _HEADLINE_TABLES + ("table6",):
        out.append(
            (f"{t.capitalize()} QAC", t, _cells(ref, table=t, method="QAC", quantity="snn_acc"))
        )
    return [s for s in out if s[2]]


def _where_else(
    sources: _Sources, cell: tuple[str, str], value: float, exclude: Sequence[str]
) -> list[str]:
    """Labels of QAC SNN columns (other than ``exclude``) holding ``value`` for ``cell``."""
    return [
        label
        for label, _, cells in sources
        if label not in exclude and cell in cells and _eq(cells[cell], value)
    ]


def _base(ref: pd.DataFrame) -> tuple[str, dict[tuple[str, str], float]]:
    """QAC accuracy at its base timesteps: Table 5's 'T' column, where absent Table 3 Base."""
    t5 = _cells(ref, table="table5", quantity="snn_acc", k=1)
    t3 = _cells(ref, table="table3", quantity="snn_acc", calibration="base")
    merged = {**t3, **t5}
    return "Table 5 T / Table 3 Base", merged


# ----------------------------------------------------------------------------- checks


def check_table5_T_vs_table3(ref: pd.DataFrame) -> list[Finding]:
    """Table 5's 'T' column is QAC at its base timesteps: it must equal a Table 3 number.

    Either Table 3 'Base' (uncalibrated) or 'Base+CAL' is a legitimate starting point (the
    paper's Table 5 uses Base); a value matching neither is an inconsistency.
    """
    t5 = _cells(ref, table="table5", quantity="snn_acc", k=1)
    base = _cells(ref, table="table3", quantity="snn_acc", calibration="base")
    cal = _cells(ref, table="table3", quantity="snn_acc", calibration="base+cal")
    cells = sorted(set(t5) & (set(base) | set(cal)))
    bad = [c for c in cells if not any(c in src and _eq(t5[c], src[c]) for src in (base, cal))]
    if not bad:
        return []
    return [
        Finding(
            "table5-T-vs-table3",
            "Table 5 vs Table 3",
            "Table 5's 'T' column (QAC at its base timesteps) matches neither Table 3 'Base' nor "
            "'Base+CAL': "
            + "; ".join(
                f"{_lab(c)} {t5[c]} vs Base {base.get(c)} / Base+CAL {cal.get(c)}" for c in bad
            ),
            {
                _lab(c): {"table5_T": t5[c], "table3_base": base.get(c), "table3_cal": cal.get(c)}
                for c in bad
            },
            "error",
        )
    ]


def check_table4_aver_aver_vs_base(ref: pd.DataFrame) -> list[Finding]:
    """Table 4 'Aver + Aver' is QAC's own alignment at its base timesteps.

    It should therefore equal the base QAC accuracy (Table 5 'T' / Table 3 Base), or the
    calibrated one (Table 3 Base+CAL) if the ablation was run after calibration.
    """
    aa = _cells(ref, table="table4", quantity="snn_acc", alignment="aver+aver")
    label, base = _base(ref)
    cal = _cells(ref, table="table3", quantity="snn_acc", calibration="base+cal")
    cells = sorted(set(aa) & set(base))
    bad = [c for c in cells if not _eq(aa[c], base[c]) and not (c in cal and _eq(aa[c], cal[c]))]
    if not bad:
        return []
    sources = _qac_snn_sources(ref)
    also = {c: _where_else(sources, c, aa[c], exclude=("Table 4 aver+aver",)) for c in bad}
    t5_2 = _cells(ref, table="table5", quantity="snn_acc", k=2)
    n2 = sum(1 for c in bad if c in t5_2 and _eq(aa[c], t5_2[c]))
    desc = (
        f"Table 4 'Aver + Aver' (the proposed alignment, at the model's base timesteps) "
        f"differs from the base QAC accuracy ({label}) and from Table 3 Base+CAL in "
        f"{len(bad)}/{len(cells)} cells"
    )
    if n2:
        desc += (
            f"; in {n2}/{len(bad)} of them it equals Table 5's '2T' column exactly "
            "(doubled timesteps), so the 'Aver + Aver' column looks like 2T results"
        )
    desc += ": " + "; ".join(
        f"{_lab(c)} {aa[c]} vs base {base[c]}" + (f" (= {', '.join(also[c])})" if also[c] else "")
        for c in bad
    )
    return [
        Finding(
            "table4-aver-aver-vs-base",
            "Table 4 vs Table 5 / Table 3",
            desc,
            {
                _lab(c): {
                    "table4_aver_aver": aa[c],
                    "base": base[c],
                    "table5_2T": t5_2.get(c),
                    "same_value_in": also[c],
                }
                for c in bad
            },
            "warning",
        )
    ]


def check_table4_other_alignment_equals_base(ref: pd.DataFrame) -> list[Finding]:
    """A non-proposed alignment reproducing the base number exactly suggests a mislabel."""
    label, base = _base(ref)
    aa = _cells(ref, table="table4", quantity="snn_acc", alignment="aver+aver")
    out = []
    for al in sorted(ref.loc[ref["table"] == "table4", "alignment"].dropna().unique()):
        if al == "aver+aver":
            continue
        vals = _cells(ref, table="table4", quantity="snn_acc", alignment=al)
        cells = sorted(set(vals) & set(base))
        same = [c for c in cells if _eq(vals[c], base[c]) and not (c in aa and _eq(aa[c], base[c]))]
        if not same:
            continue
        out.append(
            Finding(
                f"table4-{al}-equals-base",
                "Table 4 vs Table 3 / Table 5",
                f"Table 4 '{al}' equals the base QAC accuracy ({label}) in "
                f"{len(same)}/{len(cells)} cells ("
                + ", ".join(f"{_lab(c)} {vals[c]}" for c in same)
                + ") while 'aver+aver' does not; the proposed method's base result is "
                "attributed to a different alignment in some cells only",
                {_lab(c): {al: vals[c], "base": base[c], "aver+aver": aa.get(c)} for c in same},
                "warning",
            )
        )
    return out


def check_table4_identical_alignments(ref: pd.DataFrame) -> list[Finding]:
    """Two different alignments with exactly the same accuracy in a cell."""
    t4 = ref[(ref["table"] == "table4") & (ref["quantity"] == "snn_acc")]
    hits = []
    for (d, a), sub in t4.groupby(["dataset", "architecture"]):
        vals = dict(zip(sub["alignment"], sub["value"], strict=True))
        names = sorted(vals)
        for i, x in enumerate(names):
            for y in names[i + 1 :]:
                if _eq(vals[x], vals[y]):
                    hits.append(((str(d), str(a)), x, y, float(vals[x])))
    if not hits:
        return []
    return [
        Finding(
            "table4-identical-alignments",
            "Table 4",
            "Different temporal alignments report exactly the same accuracy: "
            + "; ".join(f"{_lab(c)} {x} = {y} = {v}" for c, x, y, v in hits),
            {f"{_lab(c)} {x}|{y}": v for c, x, y, v in hits},
            "info",
        )
    ]


def check_calibration_lowers(ref: pd.DataFrame) -> list[Finding]:
    """Table 3 cells where Base+CAL is below Base (text: calibration improves accuracy)."""
    base = _cells(ref, table="table3", quantity="snn_acc", calibration="base")
    cal = _cells(ref, table="table3", quantity="snn_acc", calibration="base+cal")
    cells = sorted(set(base) & set(cal))
    bad = [c for c in cells if cal[c] < base[c] - _EPS]
    if not bad:
        return []
    return [
        Finding(
            "table3-calibration-lowers-accuracy",
            "Table 3 vs Sec. 5.4",
            f"Calibration lowers the SNN accuracy in {len(bad)}/{len(cells)} cells: "
            + "; ".join(f"{_lab(c)} {base[c]} -> {cal[c]} ({cal[c] - base[c]:+.2f})" for c in bad)
            + ". The headline tables (1/2/7) report the calibrated numbers, i.e. the lower ones.",
            {_lab(c): {"base": base[c], "base+cal": cal[c]} for c in bad},
            "warning",
        )
    ]


def check_headline_vs_table3(ref: pd.DataFrame) -> list[Finding]:
    """Tables 1/2/7 'ours' SNN accuracy should equal Table 3 Base+CAL (Sec. 5.2)."""
    cal = _cells(ref, table="table3", quantity="snn_acc", calibration="base+cal")
    base = _cells(ref, table="table3", quantity="snn_acc", calibration="base")
    out = []
    for t in _HEADLINE_TABLES:
        head = _cells(ref, table=t, method="QAC", quantity="snn_acc")
        bad = [c for c in sorted(set(head) & set(cal)) if not _eq(head[c], cal[c])]
        if bad:
            out.append(
                Finding(
                    f"{t}-qac-vs-table3-cal",
                    f"{t.capitalize()} vs Table 3",
                    f"{t.capitalize()} 'ours' SNN differs from Table 3 Base+CAL: "
                    + "; ".join(
                        f"{_lab(c)} {head[c]} vs {cal[c]}"
                        + (" (= Table 3 Base)" if c in base and _eq(head[c], base[c]) else "")
                        for c in bad
                    ),
                    {_lab(c): {t: head[c], "table3_base+cal": cal[c]} for c in bad},
                    "error",
                )
            )
    return out


def check_table6_vs_headline(ref: pd.DataFrame) -> list[Finding]:
    """Table 6's QAC rows repeat Tables 1/2/7: accuracy and avg. timesteps must agree."""
    out = []
    for q in ("snn_acc", "avg_timesteps"):
        t6 = _cells(ref, table="table6", method="QAC", quantity=q)
        head: dict[tuple[str, str], float] = {}
        for t in _HEADLINE_TABLES:
            head.update(_cells(ref, table=t, method="QAC", quantity=q))
        bad = [c for c in sorted(set(t6) & set(head)) if not _eq(t6[c], head[c])]
        if bad:
            out.append(
                Finding(
                    f"table6-qac-{q}-vs-headline",
                    "Table 6 vs Tables 1/2/7",
                    f"Table 6 QAC {q} differs from Tables 1/2/7: "
                    + "; ".join(f"{_lab(c)} {t6[c]} vs {head[c]}" for c in bad),
                    {_lab(c): {"table6": t6[c], "headline": head[c]} for c in bad},
                    "error",
                )
            )
    return out


def check_snn_exceeds_ann(ref: pd.DataFrame) -> list[Finding]:
    """QAC SNN numbers above the quantized ANN they were converted from.

    At the base timesteps (Tables 3, 4, Table 5 'T') Theorem 1 makes the SNN at best equal
    to its ANN -> ``warning``; with expanded timesteps (Table 5 k >= 2) Sec. 5.3 itself says
    the SNN surpasses the ANN -> ``info``.
    """
    ann: dict[tuple[str, str], float] = {}
    for t in _HEADLINE_TABLES:
        ann.update(_cells(ref, table=t, method="QAC", quantity="ann_acc"))
    at_base: list[tuple[tuple[str, str], str, float]] = []
    expanded: list[tuple[tuple[str, str], str, float]] = []
    for label, kind, cells in _qac_snn_sources(ref):
        if kind in _HEADLINE_TABLES or kind == "table6":
            continue
        for c, v in cells.items():
            if c in ann and v > ann[c] + _EPS:
                bucket = expanded if (kind == "table5" and label != "Table 5 T") else at_base
                bucket.append((c, label, v))
    out = []
    for items, fid, sev, what in (
        (
            at_base,
            "snn-exceeds-ann-at-base-T",
            "warning",
            "at the base timesteps (where Theorem 1 makes the SNN at best equal to its ANN)",
        ),
        (
            expanded,
            "snn-exceeds-ann-expanded-T",
            "info",
            "with expanded timesteps (Sec. 5.3: 'even surpassing baseline quantized ANNs')",
        ),
    ):
        if not items:
            continue
        out.append(
            Finding(
                fid,
                "Tables 3/4/5 vs ANN column of Tables 1/2/7",
                f"QAC SNN accuracy above its own quantized ANN {what}: "
                + "; ".join(f"{_lab(c)} {label} {v} > ANN {ann[c]}" for c, label, v in items),
                {f"{_lab(c)} {label}": {"snn": v, "ann": ann[c]} for c, label, v in items},
                sev,
            )
        )
    return out


def check_ann_equals_snn_value(ref: pd.DataFrame) -> list[Finding]:
    """A QAC ANN accuracy identical to one of its own SNN numbers (possible copy)."""
    hits = []
    sources = _qac_snn_sources(ref)
    for t in _HEADLINE_TABLES:
        for c, v in _cells(ref, table=t, method="QAC", quantity="ann_acc").items():
            same = _where_else(sources, c, v, exclude=())
            if same:
                hits.append((t, c, v, same))
    if not hits:
        return []
    return [
        Finding(
            "qac-ann-equals-snn-value",
            "Tables 1/2/7 ANN column vs Tables 3-5",
            "A QAC ANN accuracy equals, to the last digit, one of the SNN numbers of the same "
            "model: " + "; ".join(f"{t} {_lab(c)} ANN {v} = {', '.join(s)}" for t, c, v, s in hits),
            {f"{t} {_lab(c)}": {"ann": v, "same_as": s} for t, c, v, s in hits},
            "info",
        )
    ]


def check_table5_monotonic(ref: pd.DataFrame) -> list[Finding]:
    """Table 5 should rise with k (text: 'accuracy incrementally improved')."""
    t5 = ref[(ref["table"] == "table5") & (ref["quantity"] == "snn_acc")]
    dips, plateaus = [], []
    for (d, a), sub in t5.groupby(["dataset", "architecture"]):
        s = sub.sort_values("k")
        ks, vs = [int(k) for k in s["k"]], [float(v) for v in s["value"]]
        for i in range(1, len(vs)):
            if vs[i] < vs[i - 1] - _EPS:
                dips.append(((str(d), str(a)), ks[i - 1], ks[i], vs[i - 1], vs[i]))
        run = 1
        while run < len(vs) and _eq(vs[-1 - run], vs[-1]):
            run += 1
        if run >= 3:
            plateaus.append(((str(d), str(a)), ks[-run], vs[-1]))
    out = []
    if dips:
        out.append(
            Finding(
                "table5-non-monotonic",
                "Table 5 vs Sec. 5.3 / 7.3",
                "Accuracy drops when the timesteps grow (text: 'accuracy incrementally improved'): "
                + "; ".join(
                    f"{_lab(c)} {k0}T {v0} -> {k1}T {v1} ({v1 - v0:+.2f})"
                    for c, k0, k1, v0, v1 in dips
                ),
                {f"{_lab(c)} {k0}T->{k1}T": [v0, v1] for c, k0, k1, v0, v1 in dips},
                "warning",
            )
        )
    if plateaus:
        out.append(
            Finding(
                "table5-exact-plateau",
                "Table 5",
                f"{len(plateaus)}/{t5.groupby(['dataset', 'architecture']).ngroups} curves are "
                "identical to the last digit from some kT on (saturation reported as exact "
                "repeats): " + "; ".join(f"{_lab(c)} from {k}T at {v}" for c, k, v in plateaus),
                {_lab(c): {"from_k": k, "value": v} for c, k, v in plateaus},
                "info",
            )
        )
    return out


def check_table8_aver_vs_qcfs(ref: pd.DataFrame) -> list[Finding]:
    """Table 8: QCFS+aver vs QCFS (text: 'consistently outperforms'); T = 1 must tie."""
    t8 = ref[(ref["table"] == "table8") & (ref["quantity"] == "snn_acc")]
    if t8.empty:
        return []
    piv = t8.pivot_table(
        index=["dataset", "architecture", "L", "T"],
        columns="method",
        values="value",
        aggfunc="mean",
    )
    if "QCFS" not in piv.columns or "QCFS+aver" not in piv.columns:
        return []
    piv = piv.dropna(subset=["QCFS", "QCFS+aver"])
    worse, ties, t1 = [], [], []
    for (d, a, L, T), row in piv.iterrows():
        q, av = float(row["QCFS"]), float(row["QCFS+aver"])
        item = (f"{a}/{d} L={int(L)} T={int(T)}", q, av)
        if int(T) == 1:
            if not _eq(q, av):
                t1.append(item)
        elif _eq(q, av):
            ties.append(item)
        elif av < q:
            worse.append(item)
    out = []
    n_gt1 = int((piv.index.get_level_values("T") > 1).sum())
    if worse or ties:
        out.append(
            Finding(
                "table8-aver-not-better",
                "Table 8 vs Sec. 7.6",
                "Sec. 7.6 says QCFS+aver 'consistently outperforms' QCFS, but at T > 1 it is "
                f"lower in {len(worse)} and tied in {len(ties)} of {n_gt1} cells (smallest such T: "
                f"{min(int(n.rsplit('T=', 1)[1]) for n, _, _ in worse + ties)}). Lower: "
                + "; ".join(f"{n} {av} < {q}" for n, q, av in worse)
                + (". Ties: " + "; ".join(f"{n} {q}" for n, q, _ in ties) if ties else ""),
                {
                    "lower": {n: {"QCFS": q, "QCFS+aver": av} for n, q, av in worse},
                    "ties": {n: q for n, q, _ in ties},
                },
                "warning",
            )
        )
    if t1:
        out.append(
            Finding(
                "table8-t1-not-identical",
                "Table 8",
                "At T = 1 there is nothing to align, so QCFS and QCFS+aver must be identical, but: "
                + "; ".join(f"{n} QCFS {q} vs QCFS+aver {av}" for n, q, av in t1),
                {n: {"QCFS": q, "QCFS+aver": av} for n, q, av in t1},
                "warning",
            )
        )
    return out


def _snn_points(rows: pd.DataFrame) -> set[tuple[int, float]]:
    """``{(T, snn_acc)}`` of a literature row."""
    snn = rows[(rows["quantity"] == "snn_acc") & rows["T"].notna()]
    return {(int(T), float(v)) for T, v in zip(snn["T"], snn["value"], strict=True)}


def check_copied_literature_rows(ref: pd.DataFrame) -> list[Finding]:
    """Literature rows repeated under a different architecture of the same table."""
    lit = ref[(ref["method"] != "QAC") & ref["method"].notna()]
    copied, ann_only = [], []
    for (t, d, m), sub in lit.groupby(["table", "dataset", "method"]):
        archs = sorted(sub["architecture"].dropna().unique())
        for i, a1 in enumerate(archs):
            for a2 in archs[i + 1 :]:
                r1, r2 = sub[sub["architecture"] == a1], sub[sub["architecture"] == a2]
                ann1 = r1.loc[r1["quantity"] == "ann_acc", "value"].tolist()
                ann2 = r2.loc[r2["quantity"] == "ann_acc", "value"].tolist()
                s1, s2 = _snn_points(r1), _snn_points(r2)
                same_ann = bool(ann1 and ann2 and _eq(ann1[0], ann2[0]))
                shared = sorted(s1 & s2)
                notes = " ".join(str(n) for n in sub["note"].dropna().unique())
                starred = "*" in notes
                item = {
                    "table": str(t),
                    "dataset": str(d),
                    "method": str(m),
                    "archs": (a1, a2),
                    "ann": ann1[0] if same_ann else None,
                    "shared": shared,
                    "starred": starred,
                }
                if shared and (same_ann or not (ann1 and ann2)):
                    copied.append(item)
                elif same_ann:
                    ann_only.append(item)
    out = []
    if copied:
        out.append(
            Finding(
                "literature-rows-copied-across-architectures",
                "Table 7 (footnote '*')",
                "Literature rows repeated under another architecture with the same ANN accuracy "
                "and identical SNN numbers: "
                + "; ".join(
                    f"{c['table']} {c['method']}: {c['archs'][1]} = {c['archs'][0]} "
                    f"(ANN {c['ann']}, shared T/SNN {c['shared']})"
                    + (" [marked *: 'not standard ResNet-18']" if c["starred"] else "")
                    for c in copied
                )
                + ". Rows marked * under ResNet-20 are the ResNet-18 (non-standard) results, not "
                "ResNet-20 results.",
                {
                    f"{c['table']} {c['method']} {c['archs']}": {
                        "ann": c["ann"],
                        "shared": c["shared"],
                    }
                    for c in copied
                },
                "warning",
            )
        )
    if ann_only:
        out.append(
            Finding(
                "literature-same-ann-across-architectures",
                "Tables 1/7",
                "Same method reports the same ANN accuracy for two architectures (different SNN "
                "numbers): "
                + "; ".join(
                    f"{c['table']} {c['method']} {c['archs'][0]}/{c['archs'][1]} ANN {c['ann']}"
                    for c in ann_only
                ),
                {f"{c['table']} {c['method']} {c['archs']}": c["ann"] for c in ann_only},
                "info",
            )
        )
    return out
