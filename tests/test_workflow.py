"""The Snakemake workflow: configuration errors, the paper-scale job list, and the whole smoke DAG
end to end in a temporary directory (every artifact exists and is non-trivial; a second run has
nothing to do; results equal the committed golden snapshot)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qac.workflow import ARTIFACTS, all_models, models_for, resolve_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
GOLDEN = REPO / "tests" / "golden" / "smoke_tidy.csv"
# Tolerance of the golden comparison: accuracies within 2 percentage points (a few of the 200-300
# synthetic test images), timesteps and bits exact. Same code + same seed on the same kind of
# machine gives identical numbers; the slack covers other CPUs' floating-point kernels.
GOLDEN_TOLERANCE = {"%": 2.0}

pytestmark = pytest.mark.skipif(
    shutil.which(SNAKEMAKE) is None and not Path(SNAKEMAKE).exists(),
    reason="snakemake is not installed (pip install -e '.[workflow]')",
)


def snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE,
        "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(workdir),
        "--workflow-profile", "none",
        *args,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_paper_scale_dry_run_lists_every_job(tmp_path):
    proc = snakemake(tmp_path, "-n", "all", "--config", "scale=paper")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    cfg = resolve_config({"scale": "paper"})
    n_models = len(all_models(cfg))
    assert n_models == 44  # 28 QAC (4 cases x 7 arch/dataset pairs) + 16 QCFS
    for rule, count in [("train", n_models), ("evaluate", n_models), ("calibrate", 7)]:
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), rule
    assert not list(tmp_path.glob("results/*"))  # a dry run writes nothing


@pytest.mark.parametrize(
    "config, needle",
    [
        (["scale=smoke", "epochz=3"], "epochz"),
        (["scale=huge"], "unknown scale 'huge'"),
        (["scale=smoke", "train={epochs: 0}"], "epochs"),
        (["scale=smoke", "experiments={main: {models: [[cifar10, resnet50]]}}"], "resnet50"),
    ],
)
def test_bad_configuration_fails_before_any_job(tmp_path, config, needle):
    proc = snakemake(tmp_path, "-n", "all", "--config", *config)
    assert proc.returncode != 0
    assert needle in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def test_missing_dataset_fails_fast_with_one_message(tmp_path):
    proc = snakemake(
        tmp_path,
        "--cores", "1", "table1",
        "--config", "scale=smoke", f"datasets={{cifar10: 'tar:{tmp_path}/missing.tar.gz'}}",
    )  # fmt: skip
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "dataset cifar10" in out and "missing.tar.gz" in out
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results").exists()


def test_grid_covers_every_experiment():
    cfg = resolve_config({"scale": "cpu"})
    assert {m.dataset for m in all_models(cfg)} == {"cifar10"}  # the others are skipped
    assert len(models_for(cfg, "table8")) == 8
    assert models_for(cfg, "table7") == []


# --------------------------------------------------------------------------------------------
# the whole smoke DAG
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    proc = snakemake(workdir, "--cores", "2", "all", "--config", "scale=smoke", timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return workdir


TABLE_ROWS_AT_LEAST = {f"table{i}": 1 for i in range(1, 9)}


@pytest.mark.slow
def test_smoke_dag_produces_every_artifact(smoke_run):
    from PIL import Image

    from qac.report import EXPECTED_COLUMNS

    res, fig = smoke_run / "results" / "smoke", smoke_run / "figures" / "smoke"
    for name in ARTIFACTS:
        if name.startswith("table"):
            table = pd.read_csv(res / "tables" / f"{name}.csv")
            assert list(table.columns) == list(EXPECTED_COLUMNS[name]), name
            assert len(table) >= TABLE_ROWS_AT_LEAST[name]
            assert (table["source"] == "ours").any() if "source" in table else True
            md = (res / "tables" / f"{name}.md").read_text()
            assert md.count("\n|") >= 2, name
            assert "\\begin{tabular}" in (res / "tables" / f"{name}.tex").read_text()
        else:
            stems = [f"fig{i}" for i in range(5, 11)] if name == "figs5_10" else [name]
            for stem in stems:
                with Image.open(fig / f"{stem}.png") as im:
                    im.load()
                    assert im.size[0] > 300 and im.size[1] > 200
                    assert len(set(im.convert("L").getdata())) > 10  # not a blank canvas
                assert (fig / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"
    for name in ["comparison.csv", "comparison.md", "claims.md", "audit.md"]:
        assert (res / name).stat().st_size > 100, name
    claims = (res / "claims.md").read_text()
    assert "C1" in claims and "C7" in claims


@pytest.mark.slow
def test_smoke_second_run_has_nothing_to_do(smoke_run):
    proc = snakemake(smoke_run, "-n", "all", "--config", "scale=smoke")
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_smoke_report_is_self_contained(smoke_run):
    report = smoke_run / "report.html"
    proc = snakemake(smoke_run, "--report", str(report), "--config", "scale=smoke")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
    html = report.read_text(errors="replace")
    assert len(html) > 100_000 and "fig2.png" in html and "table1.csv" in html


@pytest.mark.slow
def test_smoke_exactness_claim_holds(smoke_run):
    tidy = pd.read_csv(smoke_run / "results" / "smoke" / "tidy.csv")
    exact = tidy[tidy["table"] == "exactness"]
    assert len(exact) > 0
    from qac.claims import check_c1_ann_equivalence

    assert check_c1_ann_equivalence(tidy).status == "holds"


@pytest.mark.slow
def test_smoke_results_equal_the_golden_snapshot(smoke_run):
    """Regenerate deliberately with: python scripts/update_golden.py <workdir>/results/smoke."""
    ours = pd.read_csv(smoke_run / "results" / "smoke" / "tidy.csv")
    if not GOLDEN.exists():
        pytest.fail(f"golden snapshot {GOLDEN} is missing: run scripts/update_golden.py")
    golden = pd.read_csv(GOLDEN)
    key = ["table", "dataset", "architecture", "method", "quantity", "T", "L", "k",
           "alignment", "calibration", "case"]  # fmt: skip
    merged = golden.merge(ours, on=key, how="outer", suffixes=("_golden", "_ours"), indicator=True)
    missing = merged[merged["_merge"] != "both"]
    assert missing.empty, missing[key + ["_merge"]].head(10).to_string()
    for _, row in merged.iterrows():
        a, b = float(row["value_golden"]), float(row["value_ours"])
        tol = GOLDEN_TOLERANCE.get(row["unit_golden"], 0.0) if pd.notna(row["unit_golden"]) else 0
        if pd.isna(a) and pd.isna(b):
            continue
        assert a == b or abs(a - b) <= tol, (dict(row[key]), a, b)
