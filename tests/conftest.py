import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# --- the report fixtures' evaluation files, collected once per module (tests/test_report.py,
# tests/test_figures.py) --------------------------------------------------------------------
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

REPORT_EVAL_DIR = Path(__file__).parent / "fixtures" / "report" / "eval"
REPORT_EVAL_FILES = sorted(str(p) for p in REPORT_EVAL_DIR.glob("*/*/*.json"))


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    """Tidy rows of the report fixtures (cpu scale)."""
    from qac.report.collect import collect

    return collect(REPORT_EVAL_FILES, "cpu")


@pytest.fixture(scope="module")
def layers() -> pd.DataFrame:
    """Per-layer profiles of the report fixtures."""
    from qac.report.collect import layer_profiles

    return layer_profiles(REPORT_EVAL_FILES, scale="cpu")


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    """The paper's numbers."""
    from qac.paper.reference import load_reference

    return load_reference()
