"""Turn ``qac evaluate`` JSON files into tidy rows in the reference schema (the mapping from
evaluation settings to tables: the package docstring of :mod:`qac.report`)."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qac.experiments import (
    ALIGNMENT_POLICIES,
    ALL_AVER,
    EXACTNESS,
    EXTRA_TABLES,
    MAIN_CASE,
    MAIN_POLICY,
    RESULT,
    RESULT_TABLE,
    RUN_ROWS,
    TABLES,
    Activation,
    Model,
    RunRow,
    SNNSetting,
    record_value,
)
from qac.paper.reference import COLUMNS, normalize_frame
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
    "ALL_AVER",
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
REFERENCE_TABLES: tuple[str, ...] = TABLES
#: Our extra tables (:data:`qac.experiments.EXTRA_TABLES`): ``fig2`` (per case), ``energy``,
#: ``exactness`` (C1).  Their rows of different cases share a reference key (``case`` is not a
#: key column of ``qac.compare``), so pass :func:`reference_rows` of the frame to
#: :func:`qac.paper.compare.compare`.  :data:`RESULT_TABLE`, :data:`ALIGNMENT_POLICIES` and
#: :data:`ALL_AVER` are :mod:`qac.experiments`'s.
_UNITS = {
    "ann_acc": "%",
    "snn_acc": "%",
    "avg_timesteps": "steps",
    "avg_bits": "bits",
    "firing_rate": "rate",
    "energy_pj_per_sample": "pJ",
    "ann_energy_pj_per_sample": "pJ",
}
_ACCURACIES = ("ann_acc", "snn_acc")


@dataclass(frozen=True)
class EvalId:
    """The model of an eval file: its record's ``model`` (older files: its path
    ``.../eval/<dataset>/<arch>/<act>.json``)."""

    dataset: str
    architecture: str
    act: str
    case: int | None
    L: int | None

    @property
    def method(self) -> str:
        """``QAC``, ``QCFS``, or ``ReLU`` (a float pretraining model, refused by the report)."""
        if self.case is not None:
            return "QAC"
        return "QCFS" if self.L is not None else "ReLU"

    @classmethod
    def of(cls, model: Model) -> EvalId:
        act = model.activation
        return cls(model.dataset, model.arch, model.act, act.case, act.levels)


def parse_eval_path(path: str | Path) -> EvalId:
    """Parse ``.../<dataset>/<arch>/<act>.json``; ``act`` is ``qac-c1``..``qac-c4`` or
    ``qcfs-L<L>``.  Raises :class:`ReportInputError` otherwise."""
    p = Path(path)
    if p.suffix != ".json" or len(p.parts) < 3:
        raise ReportInputError(f"{path}: expected .../eval/<dataset>/<arch>/<act>.json")
    act, arch, dataset = p.stem, p.parent.name, p.parent.parent.name
    try:
        Activation.parse(act)
    except ValueError as exc:
        raise ReportInputError(f"{path}: {exc}") from None
    if not dataset or not arch:
        raise ReportInputError(f"{path}: cannot read dataset/arch from the path")
    return EvalId.of(Model(dataset, arch, act))


def _require_quantized(path: str | Path, ident: EvalId) -> EvalId:
    """``ident``, unless its model is not quantized (act ``relu``): an error naming ``path``."""
    if ident.case is None and ident.L is None:
        raise ReportInputError(
            f"{path}: model {ident.dataset}/{ident.architecture}/{ident.act} is not quantized: "
            f"{ident.act} models are pretraining models (the workflow's `pretrain`), which are "
            "not evaluated; the report reads QAC (qac-c<case>) and QCFS (qcfs-L<L>) models"
        )
    return ident


def _eval_id(path: str | Path, data: dict[str, Any], check_path: bool) -> EvalId:
    """The model of an eval record: its ``model`` field; older records (no ``model``): the
    path, with a deprecation warning. With ``check_path``, a workflow-style path
    (``.../<dataset>/<arch>/<act>.json``) must name the recorded model. A model that is not
    quantized (a ``relu`` pretraining model) is an error."""
    record = data.get("model")
    if record is None:
        warnings.warn(
            f"{path}: an evaluation without a 'model' record (an older 'qac evaluate', or one "
            "run without --model-id): its model id is read from the path; re-evaluate to "
            "record it",
            DeprecationWarning,
            stacklevel=3,
        )
        return _require_quantized(path, parse_eval_path(path))
    if not isinstance(record, dict):
        raise ReportInputError(f"{path}: 'model' must be {{dataset, arch, act}}")
    try:
        ident = EvalId.of(Model.from_json(record))
    except ValueError as exc:
        raise ReportInputError(f"{path}: {exc}") from None
    _require_quantized(path, ident)
    if check_path:
        try:
            by_path = parse_eval_path(path)
        except ReportInputError:
            return ident  # not the workflow's layout: nothing to compare
        if by_path != ident:
            raise ReportInputError(
                f"{path}: the path says {by_path.dataset}/{by_path.architecture}/{by_path.act}"
                f", the record {ident.dataset}/{ident.architecture}/{ident.act}"
            )
    return ident


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
    """The setting of an SNN run (:meth:`qac.experiments.SNNSetting.of_run`) as a dict:
    ``policy``, ``k``, ``v0`` (``None``: the default), ``T``, ``cal``, ``f64``, ``text``."""
    st = _setting(run)
    return {
        "policy": st.policy,
        "k": st.k,
        "v0": None if st.v0 == "half" else st.v0,
        "T": st.timesteps,
        "cal": st.cal,
        "f64": st.f64,
        "text": _setting_text(run, st),
    }


def _setting(run: dict[str, Any]) -> SNNSetting:
    try:
        return SNNSetting.of_run(run)
    except ValueError as exc:
        raise ReportInputError(str(exc)) from None


def _setting_text(run: dict[str, Any], st: SNNSetting) -> str:
    """The setting as the run recorded it (notes quote it)."""
    text = run.get("setting")
    return text if isinstance(text, str) and text.strip() else st.format()


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


def _run_rows(
    ctx: dict[str, Any],
    data: dict[str, Any],
    runs: list[tuple[SNNSetting, dict[str, Any]]],
    ident: EvalId,
    main_policy: str,
) -> list[dict[str, Any]]:
    """Apply :data:`qac.experiments.RUN_ROWS`: each group over every run, in order; the first
    run of a (table, quantity, keys) wins."""
    ann = data["ann"]
    cal_note = _calibration_note(data.get("calibration"))
    rows: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()

    def emit(rule: RunRow, st: SNNSetting, run: dict[str, Any]) -> None:
        table = RESULT_TABLE.get(ident.dataset) if rule.table == RESULT else rule.table
        if table is None:
            return
        keys = {**{k: st.key(k) for k in rule.keys}, **rule.fixed}
        ident_key = (table, rule.quantity, *sorted(keys.items()))
        if ident_key in seen:
            return
        seen.add(ident_key)
        src = ann if rule.source == "ann" else run
        if rule.optional and _record_or_none(src, rule.quantity) is None:
            return
        note = f"setting {_setting_text(run, st)}" + (cal_note if rule.cal_note and st.cal else "")
        value = record_value(src, rule.quantity)
        rows.append(_row(ctx, table, rule.quantity, value, note=note, sample=src, **keys))

    for group in RUN_ROWS:
        for st, run in runs:
            for rule in group:
                if (rule.any_model or ident.case == MAIN_CASE) and rule.when(st, main_policy):
                    emit(rule, st, run)
    return rows


def _record_or_none(block: dict[str, Any], key: str) -> Any:
    """``block[key]`` as :func:`qac.experiments.record_value` reads it, ``None`` if absent."""
    try:
        return record_value(block, key)
    except KeyError:
        return None


def _exactness_rows(
    ctx: dict[str, Any], ann: dict[str, Any], runs: list[tuple[SNNSetting, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Exactness (claim C1): :data:`qac.experiments.EXACTNESS`'s run (float64 preferred) beside
    the ANN accuracy in the same precision."""
    exact = [(st, r) for st, r in runs if EXACTNESS(st, MAIN_POLICY)]
    if not exact:
        return []
    st, run = sorted(exact, key=lambda sr: not sr[0].f64)[0]
    if st.f64 and ann.get("ann_acc_float64") is not None:
        ann_value, ann_note = ann["ann_acc_float64"], "float64 ANN"
        ann_sample = {"num_samples": ann.get("num_samples")}
    else:
        ann_value, ann_note = ann["ann_acc"], f"{ann.get('dtype', 'float32')} ANN"
        ann_sample = ann
    note = f"setting {_setting_text(run, st)}"
    return [
        _row(
            ctx, "exactness", "snn_acc", run["snn_acc"], note=note, sample=run, alignment=ALL_AVER
        ),
        _row(ctx, "exactness", "ann_acc", ann_value, note=ann_note, sample=ann_sample),
    ]


def _qcfs_rows(
    path: str | Path, ctx: dict[str, Any], data: dict[str, Any], ident: EvalId
) -> list[dict[str, Any]]:
    """Table 8: the QCFS ANN accuracy and the T sweep with and without averaging."""
    ann = data["ann"]
    rows = [_row(ctx, "table8", "ann_acc", ann["ann_acc"], note=f"{ident.act} ANN", sample=ann)]
    sweep = data.get("qcfs_sweep") or {}
    records = data.get("qcfs_sweep_per_image") or {}
    # the sweep's own test-set size (evaluation.sweep_limit); older records: the ANN's
    sweep_n = sweep.get("num_samples") or ann.get("num_samples")
    for key, method in (("qcfs", "QCFS"), ("qcfs+aver", "QCFS+aver")):
        accs = sweep.get(key) or {}
        if not isinstance(accs, dict):
            raise ReportInputError(f"{path}: qcfs_sweep[{key!r}] must map T -> accuracy")
        for t_text, acc in sorted(accs.items(), key=lambda kv: int(kv[0])):
            record = (records.get(key) or {}).get(str(t_text))
            sample = {"per_image": record, "num_samples": sweep_n}
            note = f"qcfs_sweep {key}"
            row = _row(ctx, "table8", "snn_acc", acc, note=note, sample=sample, T=int(t_text))
            row["method"] = method
            rows.append(row)
    return rows


def _model_rows(
    path: str | Path, data: dict[str, Any], ident: EvalId, scale: str, main_policy: str
) -> list[dict[str, Any]]:
    """Every tidy row of one eval record: Fig. 2 (the ANN block of QAC models), the rows of
    its SNN runs (:data:`qac.experiments.RUN_ROWS`), exactness and, for QCFS, Table 8."""
    ann = data["ann"]
    if "ann_acc" not in ann:
        raise ReportInputError(f"{path}: the 'ann' block has no ann_acc")
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
    if ident.case is not None:  # Fig. 2 / 11: every QAC case, ANN-level averages (case 3: inf)
        for q in ("ann_acc", "avg_timesteps", "avg_bits"):
            if q in ann:
                value = record_value(ann, q)
                rows.append(_row(ctx, "fig2", q, value, note=f"{ident.act} ANN", sample=ann))
    runs = data.get("snn") or []
    if not isinstance(runs, list):
        raise ReportInputError(f"{path}: 'snn' must be a list of runs")
    parsed = [(_setting(r), r) for r in runs]
    rows += _run_rows(ctx, data, parsed, ident, main_policy)
    rows += _exactness_rows(ctx, ann, parsed)
    if ident.L is not None:  # QCFS (a relu model never gets here: _eval_id refuses it)
        rows += _qcfs_rows(path, ctx, data, ident)
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
    main_policy: str = MAIN_POLICY,
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
        data = load_eval(f)
        ident = _eval_id(f, data, check_spec)
        key = (ident.dataset, ident.architecture, ident.act)
        if key in seen:
            raise ReportInputError(f"{f}: same model as {seen[key]}")
        seen[key] = str(f)
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
        data = load_eval(f)
        ident = _eval_id(f, data, check_path=False)
        ann = data["ann"]
        layers = ann.get("layers")
        if layers is None:  # older files: only (layer, T) pairs
            layers = [{"layer": n, "T": t} for n, t in ann.get("layer_timesteps") or []]
        for i, item in enumerate(layers):
            if not isinstance(item, dict) or "layer" not in item:
                raise ReportInputError(f"{f}: malformed ann.layers entry {item!r}")
            T = to_float(_record_or_none(item, "T"))
            bits = _record_or_none(item, "bits")
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
                    "alpha": to_float(_record_or_none(item, "alpha")),
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
    :func:`qac.paper.compare.compare` (its duplicate-key check ignores ``case``)."""
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
