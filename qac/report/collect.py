"""Turn ``qac evaluate`` JSON files into tidy rows in the reference schema.

See the package docstring of :mod:`qac.report` for the full mapping from evaluation
settings to tables.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qac.reference import COLUMNS, normalize_frame
from qac.report._common import ReportInputError, atomic_write_text, to_float
from qac.uncertainty import unpack_bits, wilson_interval

__all__ = [
    "TIDY_COLUMNS",
    "SAMPLE_COLUMNS",
    "LAYER_COLUMNS",
    "REFERENCE_TABLES",
    "EXTRA_TABLES",
    "RESULT_TABLE",
    "ALIGNMENT_POLICIES",
    "EvalId",
    "parse_eval_path",
    "parse_setting",
    "load_eval",
    "collect",
    "layer_profiles",
    "reference_rows",
    "read_tidy",
    "read_layers",
    "write_csv",
]

#: Columns of :func:`collect`'s frame: the reference columns, then ``scale``, ``case``,
#: ``source`` (the eval JSON the row came from), then, on accuracy rows, the sample behind the
#: number (:data:`SAMPLE_COLUMNS`).
SAMPLE_COLUMNS: tuple[str, ...] = ("n", "ci_low", "ci_high", "per_image", "labels")
TIDY_COLUMNS: tuple[str, ...] = (*COLUMNS, "scale", "case", "source", *SAMPLE_COLUMNS)
#: Columns of :func:`layer_profiles`'s frame.
LAYER_COLUMNS: tuple[str, ...] = (
    "dataset",
    "architecture",
    "act",
    "method",
    "case",
    "L",
    "layer_index",
    "layer",
    "T",
    "bits",
    "alpha",
    "scale",
    "source",
)
#: Tables with a reported counterpart in ``qac.reference`` (one row per key per scale).
REFERENCE_TABLES: tuple[str, ...] = tuple(f"table{i}" for i in range(1, 9))
#: Our extra tables: ``fig2`` (per case), ``energy``, ``exactness`` (C1).  Their rows of
#: different cases share a reference key (``case`` is not a key column of ``qac.compare``),
#: so pass :func:`reference_rows` of the frame to :func:`qac.compare.compare`.
EXTRA_TABLES: tuple[str, ...] = ("fig2", "energy", "exactness")
#: Dataset -> the paper table of its headline (Case 4, calibrated) QAC result.
RESULT_TABLE: dict[str, str] = {"cifar10": "table1", "cifar100": "table7", "imagenet": "table2"}
#: The alignment policies of Table 4.
ALIGNMENT_POLICIES: tuple[str, ...] = ("repl+aver", "repl+trunc", "aver+trunc", "aver+aver")

_ACT_RE = re.compile(r"^(?:qac-c(?P<case>[1-4])|qcfs-L(?P<L>[1-9][0-9]*))$")
_UNITS = {
    "ann_acc": "%",
    "snn_acc": "%",
    "avg_timesteps": "steps",
    "avg_bits": "bits",
    "firing_rate": "rate",
    "energy_pj_per_sample": "pJ",
    "ann_energy_pj_per_sample": "pJ",
}
_ENERGY_QUANTITIES = ("firing_rate", "energy_pj_per_sample", "ann_energy_pj_per_sample")
_ACCURACIES = ("ann_acc", "snn_acc")
#: The policy with averaging at every boundary (the SNN equal to its quantized ANN).
ALL_AVER = "aver+aver+aver"


@dataclass(frozen=True)
class EvalId:
    """What an eval file's path says: ``.../eval/<dataset>/<arch>/<act>.json``."""

    dataset: str
    architecture: str
    act: str
    case: int | None
    L: int | None

    @property
    def method(self) -> str:
        return "QAC" if self.case is not None else "QCFS"


def parse_eval_path(path: str | Path) -> EvalId:
    """Parse ``.../<dataset>/<arch>/<act>.json``; ``act`` is ``qac-c1``..``qac-c4`` or
    ``qcfs-L<L>``.  Raises :class:`ReportInputError` otherwise."""
    p = Path(path)
    if p.suffix != ".json" or len(p.parts) < 3:
        raise ReportInputError(f"{path}: expected .../eval/<dataset>/<arch>/<act>.json")
    act, arch, dataset = p.stem, p.parent.name, p.parent.parent.name
    m = _ACT_RE.match(act)
    if not m:
        raise ReportInputError(
            f"{path}: activation {act!r} is neither qac-c1..qac-c4 nor qcfs-L<L>"
        )
    case = int(m["case"]) if m["case"] else None
    L = int(m["L"]) if m["L"] else None
    if not dataset or not arch:
        raise ReportInputError(f"{path}: cannot read dataset/arch from the path")
    return EvalId(dataset, arch, act, case, L)


def load_eval(path: str | Path) -> dict[str, Any]:
    """Read one eval JSON (``"inf"`` strings are kept; convert with ``to_float``)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReportInputError(f"{path}: no such file") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("ann"), dict):
        raise ReportInputError(f"{path}: no 'ann' block (not a 'qac evaluate' output?)")
    return data


def _check_spec(path: str | Path, ident: EvalId, data: dict[str, Any]) -> None:
    """The checkpoint's spec (when recorded) must agree with the path."""
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return
    arch = spec.get("arch")
    # ImageNet models are built as "<arch>_imagenet" (qac.workflow.Model.builder)
    if arch is not None and str(arch).removesuffix("_imagenet") != ident.architecture:
        raise ReportInputError(f"{path}: path says {ident.architecture}, the model is {arch}")
    act = spec.get("activation")
    if not isinstance(act, dict):
        return
    name = act.get("name")
    if ident.case is not None:
        if name is not None and name != "qac":
            raise ReportInputError(f"{path}: path says {ident.act}, the model uses {name}")
        if act.get("case") is not None and int(act["case"]) != ident.case:
            raise ReportInputError(f"{path}: path says {ident.act}, model case {act['case']}")
    else:
        if name is not None and name != "qcfs":
            raise ReportInputError(f"{path}: path says {ident.act}, the model uses {name}")
        if act.get("levels") is not None and int(act["levels"]) != ident.L:
            raise ReportInputError(f"{path}: path says {ident.act}, model L={act['levels']}")


def parse_setting(run: dict[str, Any]) -> dict[str, Any]:
    """``POLICY[,k=K][,v0=V][,T=N][,cal][,f64]`` of an SNN run -> dict.

    Falls back to the run's ``policy``/``temporal_scale``/``calibrated``/``dtype`` fields when
    ``setting`` is absent.  Keys: ``policy``, ``k``, ``v0``, ``T``, ``cal``, ``f64``,
    ``text``.
    """
    text = run.get("setting")
    st: dict[str, Any] = {"policy": None, "k": 1, "v0": None, "T": None, "cal": False}
    st["f64"] = False
    if isinstance(text, str) and text.strip():
        parts = [p.strip() for p in text.split(",") if p.strip()]
        st["policy"] = parts[0]
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key == "k" and value:
                st["k"] = int(value)
            elif key == "v0" and value:
                st["v0"] = value
            elif key == "T" and value:
                st["T"] = int(value)
            elif key in ("cal", "f64") and not value:
                st[key] = True
            else:
                raise ReportInputError(f"unknown SNN setting part {part!r} in {text!r}")
    else:
        st["policy"] = run.get("policy")
        st["k"] = int(run.get("temporal_scale") or 1)
        st["cal"] = bool(run.get("calibrated"))
        st["f64"] = run.get("dtype") == "float64"
    if not st["policy"]:
        raise ReportInputError(f"SNN run without setting or policy: {sorted(run)}")
    st["cal"] = st["cal"] or bool(run.get("calibrated"))
    st["f64"] = st["f64"] or run.get("dtype") == "float64"
    st["text"] = text if isinstance(text, str) and text.strip() else st["policy"]
    return st


def _sample(value: float, source: dict[str, Any] | None) -> dict[str, Any]:
    """``n``, the 95 % Wilson interval and the per-image record of an accuracy whose eval
    block (an ``ann``/``snn`` entry or a sweep record) is ``source``; old files without
    ``per_image`` give ``n`` from ``num_samples`` (and no record), or nothing."""
    source = source or {}
    record = source.get("per_image") if isinstance(source.get("per_image"), dict) else None
    n = record.get("n") if record else source.get("num_samples")
    if not n or not math.isfinite(value):
        return {}
    n = int(n)
    if record:
        k = int(unpack_bits(str(record["correct"]), n).sum())
        if abs(100.0 * k / n - value) > 1e-6:
            raise ReportInputError(f"per-image record ({k}/{n}) disagrees with accuracy {value}")
    else:
        k = round(value * n / 100.0)
    lo, hi = wilson_interval(k, n)
    out: dict[str, Any] = {"n": n, "ci_low": lo, "ci_high": hi}
    if record:
        out.update(per_image=str(record["correct"]), labels=record.get("labels"))
    return out


def _row(
    ctx: dict[str, Any],
    table: str,
    quantity: str,
    value: Any,
    *,
    note: str | None = None,
    sample: dict[str, Any] | None = None,
    **keys: Any,
) -> dict[str, Any]:
    """One tidy row; an accuracy row gets ``n``/interval/record from ``sample`` (its eval
    block, see :func:`_sample`)."""
    row = {c: None for c in TIDY_COLUMNS}
    row.update(
        table=table,
        dataset=ctx["dataset"],
        architecture=ctx["architecture"],
        method=ctx["method"],
        quantity=quantity,
        L=ctx["L"],
        value=to_float(value),
        unit=_UNITS.get(quantity),
        note=note,
        scale=ctx["scale"],
        case=ctx["case"],
        source=ctx["source"],
    )
    if quantity in _ACCURACIES:
        row.update(_sample(row["value"], sample))
    row.update(keys)
    return row


def _calibration_note(record: dict[str, Any] | None) -> str:
    """'; calibration reverted (...)' when the revert rule fired, else ''."""
    if not record or not record.get("reverted"):
        return ""
    note = (
        f"; calibration reverted: its loss did not drop ({record['loss_before']:.4g} -> "
        f"{record['loss_after']:.4g}), original v0/v_th kept"
    )
    if record.get("snn_acc_before") is not None and record.get("snn_acc_after") is not None:
        note += (
            f" (SNN accuracy {record['snn_acc_before']:.2f}% before, "
            f"{record['snn_acc_after']:.2f}% with the discarded calibrated state)"
        )
    return note


def _model_rows(
    path: str | Path, data: dict[str, Any], ident: EvalId, scale: str, main_policy: str
) -> list[dict[str, Any]]:
    ann = data["ann"]
    ctx = {
        "dataset": ident.dataset,
        "architecture": ident.architecture,
        "method": ident.method,
        "L": ident.L,
        "case": ident.case,
        "scale": scale,
        "source": str(path),
    }
    rows: list[dict[str, Any]] = []
    if "ann_acc" not in ann:
        raise ReportInputError(f"{path}: the 'ann' block has no ann_acc")
    ann_acc = to_float(ann["ann_acc"])

    # Fig. 2 / 11: every QAC case, ANN-level averages (case 3 keeps inf).
    if ident.case is not None:
        for q in ("ann_acc", "avg_timesteps", "avg_bits"):
            if q in ann:
                rows.append(_row(ctx, "fig2", q, ann[q], note=f"{ident.act} ANN", sample=ann))

    runs = data.get("snn") or []
    if not isinstance(runs, list):
        raise ReportInputError(f"{path}: 'snn' must be a list of runs")
    parsed = [(parse_setting(r), r) for r in runs]

    def plain(st: dict[str, Any]) -> bool:
        return st["k"] == 1 and st["v0"] is None and st["T"] is None and not st["f64"]

    # Case 4: the paper's tables 1-7.
    if ident.case == 4:
        seen: set[tuple[str, ...]] = set()

        cal_note = _calibration_note(data.get("calibration"))

        def add(
            table: str, quantity: str, src: dict[str, Any], st: dict[str, Any], **keys: Any
        ) -> None:
            ident_key = (table, quantity, *(f"{k}={v}" for k, v in sorted(keys.items())))
            if ident_key in seen:  # first run of a setting wins
                return
            seen.add(ident_key)
            note = f"setting {st['text']}" + (cal_note if st["cal"] else "")
            rows.append(_row(ctx, table, quantity, src[quantity], note=note, sample=src, **keys))

        result_table = RESULT_TABLE.get(ident.dataset)
        for st, run in parsed:
            pol = st["policy"]
            if pol == main_policy and plain(st) and st["cal"]:
                if result_table is not None:
                    add(result_table, "ann_acc", ann, st)
                    add(result_table, "avg_timesteps", run, st)
                    add(result_table, "snn_acc", run, st)
                add("table6", "avg_timesteps", run, st)
                add("table6", "snn_acc", run, st)
                add("table3", "snn_acc", run, st, calibration="base+cal")
            elif pol == main_policy and plain(st):
                add("table3", "snn_acc", run, st, calibration="base")
                add("table5", "snn_acc", run, st, k=1)
            elif pol == main_policy and not st["cal"] and st["k"] > 1:
                if st["v0"] is None and st["T"] is None and not st["f64"]:
                    add("table5", "snn_acc", run, st, k=st["k"])
            elif pol == ALL_AVER and plain(st):  # beside the main policy: tables 1/2/7, 3, 5
                cal = "base+cal" if st["cal"] else "base"
                if st["cal"] and result_table is not None:
                    add(result_table, "snn_acc", run, st, alignment=ALL_AVER)
                add("table3", "snn_acc", run, st, calibration=cal, alignment=ALL_AVER)
                if not st["cal"]:
                    add("table5", "snn_acc", run, st, alignment=ALL_AVER)
            if pol in ALIGNMENT_POLICIES and plain(st) and not st["cal"]:
                add("table4", "snn_acc", run, st, alignment=pol)

    # Energy (any model): main-policy runs at k = 1.
    done: set[str] = set()
    for st, run in parsed:
        if st["policy"] != main_policy or not plain(st):
            continue
        cal = "base+cal" if st["cal"] else "base"
        if cal in done:
            continue
        done.add(cal)
        for q in _ENERGY_QUANTITIES:
            if q in run and run[q] is not None:
                rows.append(
                    _row(ctx, "energy", q, run[q], note=f"setting {st['text']}", calibration=cal)
                )

    # Exactness (claim C1): averaging everywhere; the float64 run when there is one.
    exact = [(st, r) for st, r in parsed if st["policy"] == "aver+aver+aver" and st["k"] == 1]
    exact = [(st, r) for st, r in exact if st["v0"] is None and st["T"] is None and not st["cal"]]
    if exact:
        exact.sort(key=lambda sr: not sr[0]["f64"])
        st, run = exact[0]
        if st["f64"] and ann.get("ann_acc_float64") is not None:
            ann_value, ann_note = ann["ann_acc_float64"], "float64 ANN"
            ann_sample = {"num_samples": ann.get("num_samples")}
        else:
            ann_value, ann_note = ann["ann_acc"], f"{ann.get('dtype', 'float32')} ANN"
            ann_sample = ann
        rows.append(
            _row(
                ctx,
                "exactness",
                "snn_acc",
                run["snn_acc"],
                note=f"setting {st['text']}",
                sample=run,
                alignment=ALL_AVER,
            )
        )
        rows.append(_row(ctx, "exactness", "ann_acc", ann_value, note=ann_note, sample=ann_sample))

    # QCFS: Table 8 sweep + the QCFS ANN accuracy.
    if ident.case is None:
        rows.append(_row(ctx, "table8", "ann_acc", ann_acc, note=f"{ident.act} ANN", sample=ann))
        sweep = data.get("qcfs_sweep") or {}
        records = data.get("qcfs_sweep_per_image") or {}
        for key, method in (("qcfs", "QCFS"), ("qcfs+aver", "QCFS+aver")):
            accs = sweep.get(key) or {}
            if not isinstance(accs, dict):
                raise ReportInputError(f"{path}: qcfs_sweep[{key!r}] must map T -> accuracy")
            for t_text, acc in sorted(accs.items(), key=lambda kv: int(kv[0])):
                record = (records.get(key) or {}).get(str(t_text))
                sample = {"per_image": record, "num_samples": ann.get("num_samples")}
                note = f"qcfs_sweep {key}"
                row = _row(ctx, "table8", "snn_acc", acc, note=note, sample=sample, T=int(t_text))
                row["method"] = method
                rows.append(row)
    return rows


def _frame(rows: list[dict[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
    cols = list(columns)
    return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)


def _finish_tidy(df: pd.DataFrame) -> pd.DataFrame:
    out = normalize_frame(df)
    out["case"] = pd.to_numeric(out["case"], errors="coerce").astype("Float64").astype("Int64")
    for c in SAMPLE_COLUMNS:
        if c not in out.columns:
            out[c] = None
    out["n"] = pd.to_numeric(out["n"], errors="coerce").astype("Float64").astype("Int64")
    for c in ("ci_low", "ci_high"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    for c in ("scale", "source", "per_image", "labels"):
        out[c] = out[c].astype("object").where(out[c].notna(), None)
    return out[list(TIDY_COLUMNS) + [c for c in out.columns if c not in TIDY_COLUMNS]]


def collect(
    eval_files: Iterable[str | Path],
    scale: str,
    *,
    main_policy: str = "aver+aver",
    check_spec: bool = True,
) -> pd.DataFrame:
    """Tidy rows (reference schema + ``scale``, ``case``, ``source``) from eval JSON files.

    Args:
        eval_files: ``.../eval/<dataset>/<arch>/<act>.json`` files of ``qac evaluate``.
        scale: the workflow scale (``smoke``, ``cpu``, ``paper``...), written to ``scale``.
        main_policy: the alignment policy of the headline results (``aver+aver``).
        check_spec: fail when the checkpoint spec recorded in the JSON contradicts the path.

    Returns:
        One row per number; see :mod:`qac.report` for which setting feeds which table.
        Values are float (``inf`` kept), ``T``/``L``/``k``/``case`` nullable Int64.
    """
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str], str] = {}
    for f in eval_files:
        ident = parse_eval_path(f)
        key = (ident.dataset, ident.architecture, ident.act)
        if key in seen:
            raise ReportInputError(f"{f}: same model as {seen[key]}")
        seen[key] = str(f)
        data = load_eval(f)
        if check_spec:
            _check_spec(f, ident, data)
        try:
            rows += _model_rows(f, data, ident, scale, main_policy)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ReportInputError):
                raise
            raise ReportInputError(f"{f}: malformed eval JSON ({exc!r})") from exc
    return _finish_tidy(_frame(rows, TIDY_COLUMNS))


def layer_profiles(eval_files: Iterable[str | Path], scale: str | None = None) -> pd.DataFrame:
    """Per-layer T, bits and alpha of every model (from the ``ann`` block).

    Columns :data:`LAYER_COLUMNS`; ``T``/``bits`` are float (``inf`` kept, e.g. case 3),
    ``case`` is 1-4 for QAC models and NA for QCFS (whose ``L`` is set).
    """
    rows: list[dict[str, Any]] = []
    for f in eval_files:
        ident = parse_eval_path(f)
        ann = load_eval(f)["ann"]
        layers = ann.get("layers")
        if layers is None:  # older files: only (layer, T) pairs
            layers = [{"layer": n, "T": t} for n, t in ann.get("layer_timesteps") or []]
        for i, item in enumerate(layers):
            if not isinstance(item, dict) or "layer" not in item:
                raise ReportInputError(f"{f}: malformed ann.layers entry {item!r}")
            T = to_float(item.get("T"))
            bits = item.get("bits")
            bits_f = to_float(bits) if bits is not None else math.nan
            if bits is None and math.isfinite(T) and T >= 1:
                bits_f = math.log2(T + 1)  # T = 2^n - 1 (Sec. 4.1)
            elif bits is None and math.isinf(T):
                bits_f = math.inf
            rows.append(
                {
                    "dataset": ident.dataset,
                    "architecture": ident.architecture,
                    "act": ident.act,
                    "method": ident.method,
                    "case": ident.case,
                    "L": ident.L,
                    "layer_index": i,
                    "layer": str(item["layer"]),
                    "T": T,
                    "bits": bits_f,
                    "alpha": to_float(item.get("alpha")),
                    "scale": scale,
                    "source": str(f),
                }
            )
    return _finish_layers(_frame(rows, LAYER_COLUMNS))


def _finish_layers(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for c in ("case", "L", "layer_index"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("Float64").astype("Int64")
    for c in ("T", "bits", "alpha"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    for c in ("dataset", "architecture", "act", "method", "layer", "scale", "source"):
        out[c] = out[c].astype("object").where(out[c].notna(), None)
    return out[list(LAYER_COLUMNS)].reset_index(drop=True)


def reference_rows(tidy: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``tidy`` that have a reported counterpart (tables 1-8): the input for
    :func:`qac.compare.compare` (its duplicate-key check ignores ``case``)."""
    return tidy[tidy["table"].isin(REFERENCE_TABLES)].reset_index(drop=True)


def _read_csv(path: str | Path, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise ReportInputError(f"{what} file not found: {p}")
    try:
        return pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{p}: cannot parse {what} CSV ({exc})") from exc


def read_tidy(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by ``python -m qac.report collect`` (types as :func:`collect`)."""
    raw = _read_csv(path, "tidy")
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ReportInputError(f"{path}: not a tidy results CSV (lacks {missing})")
    for c in ("scale", "case", "source"):
        if c not in raw.columns:
            raw[c] = None
    try:
        return _finish_tidy(raw)
    except (ValueError, TypeError) as exc:
        raise ReportInputError(f"{path}: bad values in tidy CSV ({exc})") from exc


def read_layers(path: str | Path) -> pd.DataFrame:
    """Read a CSV written by ``python -m qac.report layers``."""
    raw = _read_csv(path, "layers")
    missing = [c for c in ("dataset", "architecture", "case", "layer", "T") if c not in raw]
    if missing:
        raise ReportInputError(f"{path}: not a layer-profile CSV (lacks {missing})")
    for c in LAYER_COLUMNS:
        if c not in raw.columns:
            raw[c] = None
    if raw["layer_index"].isna().all():
        raw["layer_index"] = raw.groupby(
            ["dataset", "architecture", "act"], dropna=False
        ).cumcount()
    try:
        return _finish_layers(raw)
    except (ValueError, TypeError) as exc:
        raise ReportInputError(f"{path}: bad values in layer CSV ({exc})") from exc


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV atomically (``inf`` as ``inf``, missing as empty)."""
    return atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))
