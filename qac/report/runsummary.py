"""What a finished workflow run writes about itself: ``results/<scale>/wall_time.tsv`` (one row
per Snakemake invocation) and ``results/<scale>/README.md`` (total wall time, time per stage,
headline numbers and the scale's acceptance floors).

The Snakefile's hooks call :func:`record_run` (``onsuccess`` / ``onerror``: Snakemake calls no
hook for a dry run, nor when there is nothing to do) and, after a success,
:func:`write_run_summary`; ``qac report run-summary --scale S`` rebuilds the README by hand and
``--add-log`` records a run that had no hooks from its ``.snakemake/log/*.snakemake.log``.

A measurement is everything in ``wall_time.tsv``: deleting the file starts a new one, and so does
``qac report run-summary --scale S --reset`` (:func:`reset_wall_time`), which moves the old file
aside as ``wall_time.<UTC time>.tsv``.

Inputs of the README, all under ``results/<scale>/``:

* ``wall_time.tsv`` (:data:`WALL_TIME_COLUMNS`): the total is the sum of ALL its rows, a run
  being possibly done in pieces: a failed piece's finished jobs keep their outputs and the next
  piece goes on from them, so its time is part of the run's; the total says how much of it
  went to failed pieces.
* ``runs/benchmarks/<rule>/**.tsv``: Snakemake's benchmark files (columns ``s``, ``h:m:s``,
  ``max_rss``, ..., ``cpu_time``; one row per repeat), the latest run of each job, summed per
  :data:`STAGES` (:func:`stage_of`).
* ``tidy.csv`` (:func:`qac.report.collect.collect`): the case-4 rows of the result tables
  (Tables 1/2/7: ANN %, SNN % of the main policy after calibration with its Wilson interval,
  average T) and the QCFS ANN accuracies of Table 8.
* ``layers.csv`` (:func:`qac.report.collect.layer_profiles`): distinct per-layer T of each
  case-4 model.

When ``tidy.csv`` is older than the newest evaluation under ``runs/eval/`` (a run evaluated
models but did not rebuild the tables, e.g. a ``models`` target), the headline and floors
sections say they come from an earlier run.

Floors (the scale's ``floors`` configuration, e.g. ``{resnet20: {ann: 85, snn: 84,
max_mean_T: 4}, vgg16: {snn: 82}, qcfs_ann: 78, min_distinct_T: 3}``) are checked on the
numbers as printed (2 decimals, the precision rule of :mod:`qac.report.tables`); each is
``met``, ``NOT met`` or ``not run`` (no such model in the results).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import re
import shlex
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from qac.experiments import FLOAT_ACT, MAIN_CASE, RESULT_TABLE
from qac.report._common import (
    ARCHITECTURES,
    DATASETS,
    ReportInputError,
    arch_label,
    atomic_write_text,
    cell_label,
    is_missing,
)

__all__ = [
    "WALL_TIME_COLUMNS",
    "STAGES",
    "Floor",
    "record_run",
    "read_wall_time",
    "run_from_log",
    "add_log",
    "reset_wall_time",
    "stage_of",
    "stage_times",
    "headline",
    "qcfs_accuracies",
    "distinct_timesteps",
    "check_floors",
    "machine",
    "render",
    "write_run_summary",
    "run_start",
    "last_start",
    "jobs_finished",
    "finish_run",
]

#: Columns of ``wall_time.tsv``: times in UTC (ISO 8601, seconds), ``status`` ``success`` or
#: ``error``, ``jobs`` the jobs Snakemake finished (empty if unknown), ``host`` and ``command``
#: (the command line, tabs and newlines replaced by spaces).
WALL_TIME_COLUMNS: tuple[str, ...] = (
    "start_utc",
    "end_utc",
    "seconds",
    "status",
    "jobs",
    "host",
    "command",
)
#: The stages of the time table, in order: ``train`` of the float ``relu`` models, the other
#: ``train`` jobs, ``calibrate``, ``evaluate``, every other rule.
STAGES: tuple[str, ...] = (
    "pretraining",
    "quantization-aware fine-tuning",
    "calibration",
    "evaluation",
    "report",
)
#: Marks around the generated part of the README: text outside them is kept on a rewrite.
BEGIN = "<!-- qac report run-summary: begin (generated; edit outside these marks) -->"
END = "<!-- qac report run-summary: end -->"
DECIMALS = 2


# ------------------------------------------------------------------------------ wall time
def _utc(t: datetime) -> datetime:
    """``t`` in UTC (a naive ``t`` is local time), whole seconds."""
    return t.astimezone(UTC).replace(microsecond=0)


def _iso(t: datetime) -> str:
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(text: Any) -> str:
    return re.sub(r"[\t\r\n]+", " ", "" if text is None else str(text)).strip()


def record_run(
    path: str | Path,
    start: datetime,
    end: datetime,
    status: str,
    *,
    jobs: int | None = None,
    command: str | Iterable[str] = "",
    host: str | None = None,
) -> Path:
    """Append one row to ``wall_time.tsv`` at ``path`` (the header first when the file is new).

    The row goes in one ``write`` on a file opened for appending, under an exclusive lock, so
    concurrent writers never interleave and a crash leaves no half row."""
    if status not in ("success", "error"):
        raise ValueError(f"status must be success or error, got {status!r}")
    if not isinstance(command, str):
        command = shlex.join(str(c) for c in command)
    seconds = max(0.0, (_utc(end) - _utc(start)).total_seconds())
    row = [
        _iso(start),
        _iso(end),
        f"{seconds:.0f}",
        status,
        "" if jobs is None else str(int(jobs)),
        _one_line(host if host is not None else socket.gethostname()),
        _one_line(command),
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        with contextlib.suppress(ImportError, OSError):
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        header = "\t".join(WALL_TIME_COLUMNS) + "\n" if os.fstat(fd).st_size == 0 else ""
        os.write(fd, (header + "\t".join(row) + "\n").encode("utf-8"))
    finally:
        os.close(fd)  # also releases the lock
    return path


def read_wall_time(path: str | Path) -> pd.DataFrame:
    """``wall_time.tsv`` as a frame (:data:`WALL_TIME_COLUMNS`; ``seconds`` float, ``jobs``
    nullable int); an absent file gives no rows."""
    p = Path(path)
    if not p.is_file():
        return pd.DataFrame(columns=list(WALL_TIME_COLUMNS))
    try:
        df = pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReportInputError(f"{p}: cannot parse wall-time TSV ({exc})") from exc
    missing = [c for c in ("start_utc", "end_utc", "seconds", "status") if c not in df.columns]
    if missing:
        raise ReportInputError(f"{p}: not a wall-time TSV (lacks {missing})")
    for c in WALL_TIME_COLUMNS:
        if c not in df.columns:
            df[c] = None
    df["seconds"] = pd.to_numeric(df["seconds"], errors="coerce")
    df["jobs"] = pd.to_numeric(df["jobs"], errors="coerce").astype("Float64").astype("Int64")
    df["status"] = df["status"].fillna("").str.strip()
    return df[list(WALL_TIME_COLUMNS)]


_LOG_NAME = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{6})(?:\.\d+)?\.snakemake\.log$")


def run_from_log(log: str | Path, killed: bool = False) -> dict[str, Any]:
    """The row :func:`record_run` would have written for the Snakemake run of ``log`` (a
    ``.snakemake/log/*.snakemake.log``): start from its name (or its ``Date:`` line), end its
    last change, status from its last lines, jobs its ``Finished job`` lines, its ``Command:``.

    Raises :class:`ReportInputError` for a dry run, a run with nothing to do, or a log that does
    not say how the run ended (still running, or killed: no hook runs on SIGKILL, an
    out-of-memory kill or a time limit); with ``killed`` such a run is a failed piece that
    ended at the log's last change."""
    p = Path(log)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ReportInputError(f"{p}: cannot read the log ({exc})") from exc
    m = _LOG_NAME.search(p.name)
    date = re.search(r"^\s*Date: (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})", text, re.M)
    if m:
        start = datetime.strptime(m[1], "%Y-%m-%dT%H%M%S")
    elif date:
        start = datetime.strptime(date[1], "%Y-%m-%d %H:%M:%S")
    else:
        raise ReportInputError(f"{p}: no start time (neither its name nor a 'Date:' line)")
    if "This was a dry-run" in text or "Nothing to be done" in text:
        raise ReportInputError(f"{p}: a dry run or a run with nothing to do: no wall time")
    failed = (
        "Error in rule" in text
        or "did not complete successfully" in text
        or "Terminating processes on user request" in text
        or "Exiting because a job execution failed" in text
    )
    if failed:
        status = "error"
    elif re.search(r"\d+ of \d+ steps \(100%\) done", text):
        status = "success"
    elif killed:
        status = "error"
    else:
        raise ReportInputError(
            f"{p}: the log does not say how the run ended (still running? if it was killed, "
            "add it with --killed)"
        )
    command = re.search(r"^\s*Command: (.*)$", text, re.M)
    return {
        "start": start,
        "end": datetime.fromtimestamp(p.stat().st_mtime, UTC),
        "status": status,
        "jobs": len(re.findall(r"^Finished job(?:id:)? ", text, re.M)),
        "command": command[1].strip() if command else "",
        "host": None,
    }


def add_log(path: str | Path, log: str | Path, killed: bool = False) -> bool:
    """Append the run of Snakemake log ``log`` to ``wall_time.tsv`` at ``path`` unless a row
    already starts within a minute of it; ``True`` when a row was added (``killed``: see
    :func:`run_from_log`)."""
    run = run_from_log(log, killed=killed)
    start = _utc(run["start"])
    for text in read_wall_time(path)["start_utc"].dropna():
        try:
            seen = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            continue
        if abs((seen - start).total_seconds()) < 60:
            return False
    record_run(path, **{**run, "host": run["host"] or ""})
    return True


def reset_wall_time(path: str | Path, now: datetime | None = None) -> Path | None:
    """Start a new measurement: move ``wall_time.tsv`` at ``path`` aside as
    ``wall_time.<UTC time of now>.tsv`` (``-1``, ``-2``... appended if taken) and return where
    it went; ``None`` when there is no such file."""
    p = Path(path)
    if not p.is_file():
        return None
    stamp = _utc(now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    target = p.with_name(f"{p.stem}.{stamp}{p.suffix}")
    i = 0
    while target.exists():
        i += 1
        target = p.with_name(f"{p.stem}.{stamp}-{i}{p.suffix}")
    p.rename(target)
    return target


def last_start(wall: pd.DataFrame) -> datetime | None:
    """The start (UTC) of the last row of ``wall`` (:func:`read_wall_time`), None if unknown."""
    for text in reversed(list(wall["start_utc"])):
        if is_missing(text):
            continue
        try:
            return _utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
        except ValueError:
            continue
    return None


# ------------------------------------------------------------------------------ stages
def stage_of(relpath: str | Path) -> str:
    """The stage of a benchmark file ``<rule>/...tsv`` (relative to ``runs/benchmarks``)."""
    parts = Path(relpath).parts
    rule = parts[0] if parts else ""
    if rule == "train":
        return STAGES[0] if Path(relpath).stem == FLOAT_ACT else STAGES[1]
    return {"calibrate": STAGES[2], "evaluate": STAGES[3]}.get(rule, STAGES[4])


def _benchmark_sums(path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one benchmark file: the sums over its rows (repeats)."""
    try:
        df = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReportInputError(f"{path}: cannot parse benchmark TSV ({exc})") from exc
    if "s" not in df.columns:
        raise ReportInputError(f"{path}: not a Snakemake benchmark file (no 's' column)")
    cpu = pd.to_numeric(df.get("cpu_time", pd.Series(dtype=float)), errors="coerce")
    return float(pd.to_numeric(df["s"], errors="coerce").sum()), float(cpu.sum())


def stage_times(bench_dir: str | Path) -> pd.DataFrame:
    """Per stage (:data:`STAGES`, all of them, in order): ``jobs`` (benchmark files),
    ``seconds`` (sum of their wall seconds) and ``cpu_seconds`` (sum of ``cpu_time``)."""
    root = Path(bench_dir)
    acc = {s: [0, 0.0, 0.0] for s in STAGES}
    for f in sorted(root.rglob("*.tsv")) if root.is_dir() else []:
        wall, cpu = _benchmark_sums(f)
        a = acc[stage_of(f.relative_to(root))]
        a[0] += 1
        a[1] += wall
        a[2] += cpu
    return pd.DataFrame(
        [{"stage": s, "jobs": j, "seconds": w, "cpu_seconds": c} for s, (j, w, c) in acc.items()]
    )


# ------------------------------------------------------------------------------ numbers
def _rounded(v: Any) -> float:
    if is_missing(v):
        return math.nan
    f = float(v)
    return round(f, DECIMALS) + 0.0 if math.isfinite(f) else f


def _value(df: pd.DataFrame, quantity: str) -> float:
    rows = df[df["quantity"] == quantity]
    return float(rows["value"].iloc[0]) if len(rows) else math.nan


def _ordered(df: pd.DataFrame, *extra: str) -> pd.DataFrame:
    """``df`` in the tables' order: datasets, then architectures as listed in
    :mod:`qac.experiments`, then ``extra`` columns."""
    key = {
        "dataset": lambda c: c.map({d: i for i, d in enumerate(DATASETS)}).fillna(len(DATASETS)),
        "architecture": lambda c: c.map({a: i for i, a in enumerate(ARCHITECTURES)}).fillna(
            len(ARCHITECTURES)
        ),
    }
    by = ["dataset", "architecture", *extra]
    return df.sort_values(
        by, key=lambda c: key[c.name](c) if c.name in key else pd.to_numeric(c), kind="stable"
    ).reset_index(drop=True)


def headline(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per case-4 model of a result table (Tables 1/2/7: the main policy after
    calibration): ``dataset``, ``architecture``, ``ann_acc``, ``snn_acc``, ``ci_low``,
    ``ci_high``, ``n``, ``avg_timesteps``."""
    sel = tidy[
        tidy["table"].isin(set(RESULT_TABLE.values()))
        & (pd.to_numeric(tidy["case"], errors="coerce") == MAIN_CASE)
        & tidy["alignment"].isna()
    ]
    rows = []
    for (dataset, arch), g in sel.groupby(["dataset", "architecture"], sort=False):
        snn = g[g["quantity"] == "snn_acc"]
        first = snn.iloc[0] if len(snn) else None
        rows.append(
            {
                "dataset": dataset,
                "architecture": arch,
                "ann_acc": _value(g, "ann_acc"),
                "snn_acc": _value(g, "snn_acc"),
                "ci_low": math.nan if first is None else first.get("ci_low", math.nan),
                "ci_high": math.nan if first is None else first.get("ci_high", math.nan),
                "n": None if first is None else first.get("n"),
                "avg_timesteps": _value(g, "avg_timesteps"),
            }
        )
    cols = ["dataset", "architecture", "ann_acc", "snn_acc", "ci_low", "ci_high", "n"]
    return _ordered(pd.DataFrame(rows, columns=[*cols, "avg_timesteps"]))


def qcfs_accuracies(tidy: pd.DataFrame) -> pd.DataFrame:
    """The ANN accuracy of every QCFS model (Table 8): ``dataset``, ``architecture``, ``L``,
    ``ann_acc``."""
    sel = tidy[
        (tidy["table"] == "table8") & (tidy["quantity"] == "ann_acc") & (tidy["method"] == "QCFS")
    ]
    out = sel[["dataset", "architecture", "L", "value"]].rename(columns={"value": "ann_acc"})
    return _ordered(out, "L")


def distinct_timesteps(layers: pd.DataFrame) -> pd.DataFrame:
    """Distinct per-layer T of every case-4 model: ``dataset``, ``architecture``, ``act``,
    ``distinct_T``, ``layers``."""
    sel = layers[pd.to_numeric(layers["case"], errors="coerce") == MAIN_CASE]
    rows = [
        {
            "dataset": d,
            "architecture": a,
            "act": act,
            "distinct_T": int(pd.to_numeric(g["T"], errors="coerce").dropna().round(6).nunique()),
            "layers": len(g),
        }
        for (d, a, act), g in sel.groupby(["dataset", "architecture", "act"], sort=False)
    ]
    cols = ["dataset", "architecture", "act", "distinct_T", "layers"]
    return _ordered(pd.DataFrame(rows, columns=cols))


@dataclass(frozen=True)
class Floor:
    """One acceptance floor: ``what`` (e.g. ``ResNet-20 / CIFAR-10 case-4 ANN %``), the
    comparison (``>=`` or ``<=``), the ``bound``, the ``measured`` value (nan: not run) and
    the ``verdict``: ``met``, ``NOT met`` or ``not run``."""

    what: str
    op: str
    bound: float
    measured: float
    count: bool = False  # the measured value is a count (shown as an integer)

    @property
    def verdict(self) -> str:
        if is_missing(self.measured):
            return "not run"
        v = _rounded(self.measured)
        ok = v >= self.bound if self.op == ">=" else v <= self.bound
        return "met" if ok else "NOT met"


_ARCH_FLOORS = {  # key -> (label, headline column, comparison)
    "ann": ("case-4 ANN %", "ann_acc", ">="),
    "snn": ("case-4 calibrated SNN %", "snn_acc", ">="),
    "max_mean_T": ("case-4 calibrated SNN average T", "avg_timesteps", "<="),
}


def check_floors(
    floors: Mapping[str, Any] | None,
    tidy: pd.DataFrame | None,
    layers: pd.DataFrame | None,
) -> list[Floor]:
    """Every floor of ``floors`` against the results (``None`` frames: not built): per
    architecture (``ann``, ``snn``, ``max_mean_T``: each case-4 model of that architecture),
    ``qcfs_ann`` (every QCFS model's ANN %), ``min_distinct_T`` (every case-4 model's distinct
    per-layer T, from ``layers``). A floor with no model to check gives one ``not run`` entry."""
    head = headline(tidy) if tidy is not None else None
    out: list[Floor] = []
    for key, spec in (floors or {}).items():
        if key == "qcfs_ann":
            qcfs = qcfs_accuracies(tidy) if tidy is not None else pd.DataFrame()
            for r in qcfs.itertuples(index=False):
                what = f"{cell_label(r.dataset, r.architecture)} QCFS L={r.L} ANN %"
                out.append(Floor(what, ">=", float(spec), float(r.ann_acc)))
            if not len(qcfs):
                out.append(Floor("every QCFS model ANN %", ">=", float(spec), math.nan))
        elif key == "min_distinct_T":
            dist = distinct_timesteps(layers) if layers is not None else pd.DataFrame()
            for r in dist.itertuples(index=False):
                what = f"{cell_label(r.dataset, r.architecture)} {r.act} distinct per-layer T"
                out.append(Floor(what, ">=", float(spec), float(r.distinct_T), count=True))
            if not len(dist):
                what = "every case-4 model distinct per-layer T"
                out.append(Floor(what, ">=", float(spec), math.nan))
        elif isinstance(spec, Mapping):
            rows = head[head["architecture"] == key] if head is not None else pd.DataFrame()
            for sub, bound in spec.items():
                if sub not in _ARCH_FLOORS:
                    raise ReportInputError(f"floors.{key}: unknown floor {sub!r}")
                label, column, op = _ARCH_FLOORS[sub]
                for r in rows.to_dict("records"):
                    what = f"{cell_label(r['dataset'], key)} {label}"
                    out.append(Floor(what, op, float(bound), float(r[column])))
                if not len(rows):
                    out.append(Floor(f"{arch_label(key)} {label}", op, float(bound), math.nan))
        else:
            raise ReportInputError(f"floors.{key}: expected a number or a mapping, got {spec!r}")
    return out


# ------------------------------------------------------------------------------ machine
def machine() -> dict[str, Any]:
    """The machine writing the summary: ``cpu`` (model name), ``cores`` (usable by this
    process), ``torch`` and ``python`` versions."""
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    cpu = cpu or platform.processor() or platform.machine()
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    try:
        from importlib.metadata import version

        torch = version("torch")
    except Exception:  # noqa: BLE001 - any failure: unknown
        torch = "unknown"
    return {"cpu": cpu, "cores": cores, "torch": torch, "python": platform.python_version()}


# ------------------------------------------------------------------------------ rendering
def _num(v: Any, digits: int = DECIMALS) -> str:
    if is_missing(v):
        return "n/a"
    f = float(v)
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return f"{f:.{digits}f}"


def _interval(lo: Any, hi: Any) -> str:
    return "" if is_missing(lo) and is_missing(hi) else f"[{_num(lo)}, {_num(hi)}]"


def _duration(seconds: float) -> str:
    """``1 h 05 min``, ``12 min 05 s``, ``7 s``."""
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s" if m else f"{sec} s"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


_CORES = re.compile(r"(?:^|\s)(?:--cores|-c|--jobs|-j)(?:=|\s+)(\d+)")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


#: The README's line on how to start a new measurement (``str.format`` with ``scale``).
RESET_NOTE = (
    "Deleting `wall_time.tsv` starts a new measurement (`qac report run-summary --scale {scale} "
    "--reset` moves it aside as `wall_time.<UTC time>.tsv`)."
)


def _wall_section(wall: pd.DataFrame, scale: str) -> list[str]:
    if not len(wall):
        return [
            "No run recorded in `wall_time.tsv` (the Snakefile's hooks append a row per run; "
            "`qac report run-summary --add-log .snakemake/log/<run>.snakemake.log` adds a run "
            "that had none).",
            "",
            RESET_NOTE.format(scale=scale),
        ]
    bad = wall[wall["status"] != "success"]
    # every piece counts: the jobs a failed piece finished keep their outputs
    total = float(wall["seconds"].sum())
    lost = float(bad["seconds"].sum())
    failed = f"of which {_duration(lost)} in failed pieces" if len(bad) else "none failed"
    seconds = f" ({total:,.0f} s)" if total >= 60 else ""
    out = [
        f"**Total: {_plural(len(wall), 'piece')}, {_duration(total)} in all ({failed})**"
        f"{seconds}: the sum of every Snakemake run in `wall_time.tsv`, failed ones included "
        "(a run may be done in pieces, and the jobs a failed piece finished are kept).",
        "",
    ]
    rows = [
        [
            str(r["start_utc"]),
            _duration(float(r["seconds"])) if not is_missing(r["seconds"]) else "n/a",
            str(r["status"]),
            "" if is_missing(r["jobs"]) else str(int(r["jobs"])),
            f"`{r['command']}`" if not is_missing(r["command"]) and r["command"] else "",
        ]
        for r in wall.to_dict("records")
    ]
    out += _table(["start (UTC)", "wall time", "status", "jobs", "command"], rows)
    return [*out, "", RESET_NOTE.format(scale=scale)]


def _stage_section(stages: pd.DataFrame, wall: pd.DataFrame) -> list[str]:
    if not stages["jobs"].sum():
        return ["No benchmark files under `runs/benchmarks/` yet."]
    rows = [
        [r.stage, str(r.jobs), _duration(r.seconds), f"{r.seconds:,.0f}", f"{r.cpu_seconds:,.0f}"]
        for r in stages.itertuples(index=False)
        if r.jobs
    ]
    t = stages.sum(numeric_only=True)
    rows.append(
        [
            "**all**",
            str(int(t["jobs"])),
            _duration(t["seconds"]),
            f"{t['seconds']:,.0f}",
            f"{t['cpu_seconds']:,.0f}",
        ]
    )
    cores = [int(m[1]) for c in wall["command"].dropna() if (m := _CORES.search(f" {c}"))]
    if not cores:
        parallel = "Jobs may run in parallel (`--cores`), so the sums can exceed the wall time."
    elif max(cores) == 1:
        parallel = "Jobs ran one at a time."
    else:
        parallel = f"Jobs ran up to {max(cores)} at a time, so the sums exceed the wall time."
    return [
        "Sum over the jobs of each stage of Snakemake's benchmark files (`runs/benchmarks/`, "
        f"the latest run of each job). {parallel}",
        "",
        *_table(["stage", "jobs", "job time", "job seconds", "CPU seconds"], rows),
    ]


def _headline_section(tidy: pd.DataFrame | None, main_policy: str | None) -> list[str]:
    if tidy is None:
        return ["`tidy.csv` is not built yet (the `summary` target builds it)."]
    head = headline(tidy)
    policy = f" (`{main_policy}`)" if main_policy else ""
    out = [
        f"Case-4 QAC: ANN, and SNN with the main policy{policy} after calibration "
        "(95 % Wilson interval).",
        "",
    ]
    if len(head):
        rows = [
            [
                cell_label(r["dataset"], r["architecture"]),
                _num(r["ann_acc"]),
                _num(r["snn_acc"]),
                _interval(r["ci_low"], r["ci_high"]),
                "" if is_missing(r["n"]) else f"{int(r['n']):,}",
                _num(r["avg_timesteps"]),
            ]
            for r in head.to_dict("records")
        ]
        out += _table(["model", "ANN %", "SNN %", "SNN 95 % CI", "test images", "average T"], rows)
    else:
        out.append("No case-4 result rows in `tidy.csv`.")
    qcfs = qcfs_accuracies(tidy)
    if len(qcfs):
        out += ["", "QCFS (Table 8) ANN accuracy:", ""]
        rows = [
            [cell_label(r.dataset, r.architecture), str(int(r.L)), _num(r.ann_acc)]
            for r in qcfs.itertuples(index=False)
        ]
        out += _table(["model", "L", "ANN %"], rows)
    return out


def _floor_section(checks: list[Floor]) -> list[str]:
    if not checks:
        return ["No `floors` configured for this scale."]
    counts = {v: sum(c.verdict == v for c in checks) for v in ("met", "NOT met", "not run")}
    rows = [
        [
            c.what,
            f"{c.op} {c.bound:g}",
            "not run" if c.verdict == "not run" else _num(c.measured, 0 if c.count else DECIMALS),
            c.verdict if c.verdict == "met" else f"**{c.verdict}**",
        ]
        for c in checks
    ]
    return [
        f"{counts['met']} of {len(checks)} met, {counts['NOT met']} NOT met, "
        f"{counts['not run']} not run (values compared as printed, {DECIMALS} decimals).",
        "",
        *_table(["floor", "bound", "measured", "verdict"], rows),
    ]


def render(
    scale: str,
    *,
    wall: pd.DataFrame,
    stages: pd.DataFrame,
    tidy: pd.DataFrame | None,
    layers: pd.DataFrame | None,
    floors: Mapping[str, Any] | None = None,
    main_policy: str | None = None,
    note: str | None = None,
    host: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    tidy_stale: bool = False,
) -> str:
    """The generated part of the README (Markdown, between :data:`BEGIN` and :data:`END`);
    ``tidy_stale``: ``tidy.csv`` is older than the newest evaluation under ``runs/eval/``
    (:data:`STALE_NOTE` on the headline and floors sections)."""
    host = dict(host or machine())
    now = now or datetime.now(UTC)
    hosts = sorted({str(h) for h in wall["host"].dropna() if str(h)}) if len(wall) else []
    lines = [
        BEGIN,
        f"# Results of the `{scale}` scale",
        "",
        f"Written {_iso(now).replace('T', ' ').rstrip('Z')} UTC by `qac report run-summary "
        f"--scale {scale}` (after every successful Snakemake run). Machine: {host['cpu']}, "
        f"{host['cores']} cores; torch {host['torch']}, Python {host['python']}"
        + (f"; runs on {', '.join(hosts)}." if hosts else "."),
    ]
    if note:
        lines += ["", f"Setting: {_one_line(note)}"]
    lines += ["", "## Wall time", "", *_wall_section(wall, scale)]
    lines += ["", "## Time per stage", "", *_stage_section(stages, wall)]
    stale = f" {STALE_NOTE}" if tidy_stale and tidy is not None else ""
    lines += ["", f"## Headline numbers{stale}", "", *_headline_section(tidy, main_policy)]
    floor_lines = _floor_section(check_floors(floors, tidy, layers))
    lines += ["", f"## Acceptance floors{stale}", "", *floor_lines]
    lines += [
        "",
        "Files: `tables/`, `tidy.csv`, `layers.csv` (per-layer T, bits and alpha of every "
        "model), `comparison.md`, `claims.md`, `audit.md`, `wall_time.tsv`.",
        END,
    ]
    return "\n".join(lines) + "\n"


#: The headline and floors sections' mark when ``tidy.csv`` predates the last run.
STALE_NOTE = "(from an earlier run: tidy.csv older than the newest evaluation)"


def _merge(old: str, block: str) -> str:
    """``block`` in place of the generated part of ``old``; when ``old`` has no (or broken)
    marks, ``block`` first and the reader's text of ``old`` kept below it."""
    i, j = old.find(BEGIN), old.find(END)
    if i >= 0 and j > i:
        return old[:i] + block.rstrip("\n") + old[j + len(END) :]
    kept = old.replace(BEGIN, "").replace(END, "").strip()
    return block if not kept else block.rstrip("\n") + "\n\n" + kept + "\n"


def write_run_summary(
    results_dir: str | Path,
    scale: str,
    *,
    floors: Mapping[str, Any] | None = None,
    main_policy: str | None = None,
    note: str | None = None,
    host: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Path:
    """Write ``<results_dir>/README.md`` from ``wall_time.tsv``, ``runs/benchmarks/``,
    ``tidy.csv`` and ``layers.csv`` there (those missing are said to be); text outside the
    generated marks of an existing README is kept. A ``tidy.csv`` last modified before the start
    older than the newest evaluation under ``runs/eval/`` is marked as from an earlier run."""
    from qac.report.collect import read_layers, read_tidy

    res = Path(results_dir)
    tidy_path = res / "tidy.csv"
    tidy = read_tidy(tidy_path) if tidy_path.is_file() else None
    layers = read_layers(res / "layers.csv") if (res / "layers.csv").is_file() else None
    wall = read_wall_time(res / "wall_time.tsv")
    evaluations = [p.stat().st_mtime for p in (res / "runs" / "eval").rglob("*.json")]
    stale = tidy is not None and bool(evaluations) and tidy_path.stat().st_mtime < max(evaluations)
    block = render(
        scale,
        wall=wall,
        stages=stage_times(res / "runs" / "benchmarks"),
        tidy=tidy,
        layers=layers,
        floors=floors,
        main_policy=main_policy,
        note=note,
        host=host,
        now=now,
        tidy_stale=stale,
    )
    readme = res / "README.md"
    old = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    return atomic_write_text(readme, _merge(old, block))


def run_start(workflow: Any = None) -> datetime:
    """When a Snakemake run began: its ``workflow.start_time`` (local time, set before the DAG
    is built, as in Snakemake's "Elapsed time"), else now; in UTC."""
    start = getattr(workflow, "start_time", None)
    return _utc(start) if isinstance(start, datetime) else datetime.now(UTC)


def jobs_finished(workflow: Any = None) -> int | None:
    """The jobs a Snakemake run finished (its scheduler's count), ``None`` if unknown."""
    n = getattr(getattr(workflow, "scheduler", None), "finished_jobs", None)
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def finish_run(
    results_dir: str | Path,
    status: str,
    *,
    start: datetime | None = None,
    config: Mapping[str, Any] | None = None,
    workflow: Any = None,
    command: str | Iterable[str] | None = None,
) -> None:
    """The Snakefile's ``onsuccess``/``onerror``: append the run (``start``, default
    :func:`run_start`, to now; :func:`jobs_finished`; ``command``, default this process's
    ``snakemake`` command line) to ``wall_time.tsv`` and, after a success, rewrite
    ``README.md`` (:func:`write_run_summary` with the ``floors``, ``main_policy`` and
    ``data_note`` of ``config``). A failure here is printed, never raised: it must not turn a
    finished run into a failed one."""
    import sys

    cfg = dict(config or {})
    res = Path(results_dir)
    if command is None:
        command = ["snakemake", *sys.argv[1:]]
    try:
        start = start or run_start(workflow)
        end = datetime.now(UTC)
        jobs = jobs_finished(workflow)
        record_run(res / "wall_time.tsv", start, end, status, jobs=jobs, command=command)
        if status == "success":
            path = write_run_summary(
                res,
                str(cfg.get("scale") or res.name),
                floors=cfg.get("floors"),
                main_policy=cfg.get("main_policy"),
                note=cfg.get("data_note"),
            )
            print(f"run summary: {path}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        print(f"qac.report: warning: run summary not written: {exc!r}", file=sys.stderr)
