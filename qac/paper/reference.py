"""Reference numbers transcribed from the QAC paper.

The paper's Tables 1-8 live, in full (including every literature row), in one tidy CSV,
``data/paper_numbers.csv``, shipped as package data beside this module.  Numbers that appear
only in the running text (and the paper's qualitative statements) live in
``data/paper_claims.yaml``.  See ``data/README.md`` for the schema and for every reading
choice made while transcribing the PDF-to-text extraction.

Public API
----------
- :func:`load_reference` - the CSV as a typed :class:`pandas.DataFrame`.
- :func:`reference_path` - where the CSV lives.
- :data:`TABLE_SHAPES` - expected shape of every paper table (used by completeness tests).
- :func:`load_paper_claims` - the text claims as a list of dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

__all__ = [
    "COLUMNS",
    "KEY_COLUMNS",
    "INT_COLUMNS",
    "TEXT_COLUMNS",
    "TableShape",
    "TABLE_SHAPES",
    "reference_path",
    "claims_path",
    "load_reference",
    "load_paper_claims",
    "normalize_frame",
]

_DATA = Path(__file__).resolve().parent / "data"

#: Column order of ``paper_numbers.csv`` (and of every results frame in this project).
COLUMNS: tuple[str, ...] = (
    "table",
    "dataset",
    "architecture",
    "method",
    "quantity",
    "T",
    "L",
    "k",
    "alignment",
    "calibration",
    "value",
    "unit",
    "note",
)
#: Columns that identify one number (unique in the reference CSV): those before ``value``.
KEY_COLUMNS: tuple[str, ...] = COLUMNS[: COLUMNS.index("value")]
#: Settings stored as nullable integers.
INT_COLUMNS: tuple[str, ...] = ("T", "L", "k")
#: Free-text / identifier columns (missing -> NA): all but ``value`` and the integer ones.
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in (*INT_COLUMNS, "value"))


@dataclass(frozen=True)
class TableShape:
    """Shape of one paper table and of its tidy transcription.

    Attributes:
        title: the table's caption (abridged).
        printed_columns: column headers as printed in the paper.
        printed_rows: number of body rows as printed (one per method x architecture line;
            Table 8: one per method x L line).
        rows_by_group: expected number of CSV rows per ``(dataset, architecture)``.
        dropped: printed cells/rows intentionally *not* turned into CSV rows, with reason.
    """

    title: str
    printed_columns: tuple[str, ...]
    printed_rows: int
    rows_by_group: dict[tuple[str, str], int]
    dropped: tuple[str, ...] = field(default_factory=tuple)

    @property
    def csv_rows(self) -> int:
        """Total number of rows this table contributes to ``paper_numbers.csv``."""
        return sum(self.rows_by_group.values())


def _literature_table(
    title: str, dataset: str, rows: dict[str, int], *, printed_rows: int, unit: str = "(%)"
) -> TableShape:
    """Shape of a 'comparison with previous works' table of one dataset (Tables 1, 2, 7):
    ``rows`` maps each architecture to its CSV rows; ``unit`` follows the ANN/SNN headers."""
    return TableShape(
        title=title,
        printed_columns=("Architecture", "Methods", f"ANN{unit}", "Time Steps", f"SNN{unit}"),
        printed_rows=printed_rows,
        rows_by_group={(dataset, arch): n for arch, n in rows.items()},
    )


def _cifar_grid(rows: int) -> dict[tuple[str, str], int]:
    """``rows`` CSV rows for each CIFAR-10/100 x ResNet-18/ResNet-20/VGG-16 group."""
    return {
        (d, a): rows for d in ("cifar10", "cifar100") for a in ("resnet18", "resnet20", "vgg16")
    }


#: Expected shape of every table (derived by hand from the paper; see README.md).
#: Literature row with ``n`` timestep settings -> 1 ``ann_acc`` + ``n`` ``snn_acc`` rows
#: (Table 6 has no ANN column -> ``n`` rows).  QAC row -> ``ann_acc`` + ``avg_timesteps`` +
#: ``snn_acc`` (Table 6: no ``ann_acc``).
TABLE_SHAPES: dict[str, TableShape] = {
    "table1": _literature_table(
        "Comparison with previous works on CIFAR-10",
        "cifar10",
        {"vgg16": 25, "resnet18": 27, "resnet20": 14},
        printed_rows=25,  # VGG-16: 10, ResNet-18: 10, ResNet-20: 5
    ),
    "table2": _literature_table(
        "Comparison with previous works on ImageNet",
        "imagenet",
        {"vgg16": 21},
        printed_rows=7,
    ),
    "table3": TableShape(
        title="Calibration ablation study (QAC Base vs Base+CAL)",
        printed_columns=("Calibration", "ResNet-18 (%)", "ResNet-20 (%)", "VGG-16 (%)"),
        printed_rows=2,  # each cell holds 'CIFAR-10 / CIFAR-100 / ImageNet'
        rows_by_group={
            ("cifar10", "resnet18"): 2,
            ("cifar100", "resnet18"): 2,
            ("cifar10", "resnet20"): 2,
            ("cifar100", "resnet20"): 2,
            ("cifar10", "vgg16"): 2,
            ("cifar100", "vgg16"): 2,
            ("imagenet", "vgg16"): 2,
        },
        dropped=("ImageNet ResNet-18 and ResNet-20 cells printed '-' (not reported): 4 cells",),
    ),
    "table4": TableShape(
        title="Temporal alignment ablation study",
        printed_columns=("Temporal Alignment", "ResNet-18 (%)", "ResNet-20 (%)", "VGG-16 (%)"),
        printed_rows=4,  # each cell holds 'CIFAR-10 / CIFAR-100'
        rows_by_group=_cifar_grid(4),
    ),
    "table5": TableShape(
        title="Temporal scalability analysis",
        printed_columns=("Datasets", "Architecture", "T", "2T", "3T", "4T", "5T", "6T"),
        printed_rows=6,
        rows_by_group=_cifar_grid(6),
    ),
    "table6": TableShape(
        title="Comparison with directly trained (surrogate-gradient) methods",
        printed_columns=(
            "Dataset",
            "Method",
            "Type",
            "Architecture",
            "Time-steps",
            "Accuracy (%)",
        ),
        printed_rows=29,  # CIFAR-10: 11, CIFAR-100: 9, ImageNet: 9 printed (8 distinct)
        rows_by_group={
            ("cifar10", "resnet18"): 4,  # tdBN, Dspike, QAC (avg T + acc)
            ("cifar10", "resnet19"): 7,  # TET 1, GLIF 3, TAB 3
            ("cifar10", "resnet20"): 3,  # RMP-Loss 1, QAC 2
            ("cifar10", "modified_plif_net"): 1,
            ("cifar10", "vgg9"): 1,
            ("cifar10", "vgg16"): 2,
            ("cifar100", "resnet18"): 3,  # Dspike 1, QAC 2
            ("cifar100", "resnet19"): 10,  # TET 1, GLIF 3, RMP-Loss 3, TAB 3
            ("cifar100", "vgg9"): 1,
            ("cifar100", "resnet20"): 2,
            ("cifar100", "vgg16"): 2,
            ("imagenet", "resnet34"): 5,  # tdBN, GLIF, RMP-Loss, TAB x2
            ("imagenet", "sew_resnet34"): 3,  # SEW-ResNet, TET, PSN (once)
            ("imagenet", "vgg16"): 2,
        },
        dropped=("ImageNet PSN row printed twice with identical numbers: recorded once",),
    ),
    "table7": _literature_table(
        "Comparison with previous works on CIFAR-100",
        "cifar100",
        {"vgg16": 25, "resnet18": 14, "resnet20": 27},
        printed_rows=25,  # VGG-16: 10, ResNet-18: 5, ResNet-20: 10
        unit="",
    ),
    "table8": TableShape(
        title="QCFS with and without temporal averaging alignment",
        printed_columns=(
            "Method",
            "T=1",
            "T=2",
            "T=3",
            "T=4",
            "T=8",
            "T=16",
            "T=32",
            "T=64",
        ),
        printed_rows=32,  # 4 sections x 4 L x 2 methods
        rows_by_group={
            (d, a): 64  # 4 L x 2 methods x 8 T
            for d in ("cifar10", "cifar100")
            for a in ("resnet20", "vgg16")
        },
    ),
}


def _clean_text(v: object) -> object:
    """Strip strings; map empty strings and any NA flavour to ``None``."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return v


def reference_path() -> Path:
    """Path of the packaged ``paper_numbers.csv``."""
    return _DATA / "paper_numbers.csv"


def claims_path() -> Path:
    """Path of the packaged ``paper_claims.yaml``."""
    return _DATA / "paper_claims.yaml"


def normalize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` with the project's column types.

    ``value`` becomes float64, ``T``/``L``/``k`` nullable ``Int64`` (a non-integral value
    raises), text columns ``object`` with stripped strings and missing entries for empty
    cells.  Missing standard columns are added
    (all-NA); extra columns (e.g. ``scale``, ``case``) are kept after the standard ones.
    """
    out = df.copy()
    for col in COLUMNS:
        if col not in out.columns:
            out[col] = pd.NA
    out["value"] = pd.to_numeric(out["value"], errors="raise").astype("float64")
    for col in INT_COLUMNS:
        num = pd.to_numeric(out[col], errors="raise")
        if num.notna().any():
            frac = num.dropna().astype(float)
            if (frac != frac.round()).any():
                raise ValueError(f"column {col!r} holds non-integral values")
        out[col] = num.astype("Float64").round().astype("Int64")
    for col in TEXT_COLUMNS:
        out[col] = out[col].astype("object").map(_clean_text).astype("object")
    extra = [c for c in out.columns if c not in COLUMNS]
    return out[list(COLUMNS) + extra].reset_index(drop=True)


def load_reference(path: str | Path | None = None) -> pd.DataFrame:
    """Load the paper's numbers as a typed, tidy DataFrame.

    Args:
        path: optional alternative CSV (same schema); defaults to :func:`reference_path`.

    Returns:
        One row per reported number with the columns of :data:`COLUMNS`: ``value`` float,
        ``T``/``L``/``k`` nullable ``Int64``, text columns ``object`` whose empty cells are
        missing (test with :func:`pandas.isna`).
    """
    raw = pd.read_csv(
        path or reference_path(),
        dtype=str,
        keep_default_na=False,
        na_values=[""],
    )
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise ValueError(f"reference CSV lacks columns {missing}")
    return normalize_frame(raw[list(COLUMNS)])


def load_paper_claims(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Load the paper's text-only numbers and qualitative statements.

    Returns:
        A list of dicts with at least ``id``, ``section``, ``quote`` and ``check`` (the
        machine-checkable form, ``{"kind": "none"}`` where the statement is about a figure
        whose numbers the text does not give).
    """
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path or claims_path(), encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=loader)  # a safe loader (C version when available)
    claims = data["claims"] if isinstance(data, dict) else data
    if not isinstance(claims, list):
        raise ValueError("paper_claims.yaml must hold a list of claims")
    return claims
