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

from qac.report.runsummary import read_wall_time
from qac.workflow import ARTIFACTS, all_models, models_for, resolve_config

REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "workflow" / "presets"
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
GOLDEN = REPO / "tests" / "golden" / "smoke_tidy.csv"
# Tolerances of the golden comparison. The smoke scale trains, calibrates and evaluates in float64
# with MKL's CPU-independent code path (MKL_CBWR=COMPATIBLE, set by the Snakefile), so a rerun on
# another x86 CPU can differ from the snapshot only through double-precision rounding in
# PyTorch's own vectorised kernels (AVX2 and AVX-512 reduce in different lane orders), at most a
# few ulp in unreported quantities: every tidy value was bitwise equal under ATEN_CPU_CAPABILITY=
# avx2 + ONEDNN_MAX_CPU_ISA=AVX2 + MKL_ENABLE_INSTRUCTIONS=AVX2 against the default AVX-512 path
# (docs/reliability.md, "Cross-ISA check"). Such a
# difference flips a prediction only if two logits tie to ~1e-12, so an accuracy may move by at
# most one image (1 pp = one image of the smallest smoke test set, 100 images) and at most
# GOLDEN_MAX_MOVED accuracies may move at all; every other value (T, bits, firing rates,
# energies) must agree to a relative 1e-6. A real regression (code, seed, data) moves many
# values by many images, and fails.
GOLDEN_ACC_TOLERANCE_PP = 1.0
GOLDEN_MAX_MOVED = 3
GOLDEN_RTOL = 1e-6
GOLDEN_KEY = ["table", "dataset", "architecture", "method", "quantity", "T", "L", "k",
              "alignment", "calibration", "case"]  # fmt: skip

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
    cfg = resolve_config({"scale": "paper"}, PRESETS)
    n_models = len(all_models(cfg))
    assert n_models == 44  # 28 QAC (4 cases x 7 arch/dataset pairs) + 16 QCFS
    for rule, count in [("train", n_models), ("evaluate", n_models), ("calibrate", 7)]:
        assert any(line.split() == [rule, str(count)] for line in out.splitlines()), rule
    assert not list(tmp_path.glob("results/*"))  # a dry run writes nothing


# The QCFS code's recipe per dataset (docs/assumptions.md, "Paper-scale training recipe").
PAPER_RECIPE = {
    "cifar10": {"lr": 0.1, "weight_decay": 5e-4, "batch_size": 200, "epochs": 300},
    "cifar100": {"lr": 0.02, "weight_decay": 5e-4, "batch_size": 200, "epochs": 300},
    "imagenet": {"lr": 0.1, "weight_decay": 1e-4, "batch_size": 128, "epochs": 120},
}


def test_paper_scale_trains_with_the_qcfs_recipe(tmp_path):
    import json
    import re

    proc = snakemake(tmp_path, "-n", "-p", "all", "--config", "scale=paper")
    assert proc.returncode == 0, proc.stderr[-2000:]
    commands = re.findall(
        r"--config-json '(\{.*?\})' --out checkpoints/paper/(\w+)/", proc.stdout + proc.stderr
    )
    assert len(commands) == 44
    for payload, dataset in commands:
        opts = json.loads(payload)
        assert {k: opts[k] for k in PAPER_RECIPE[dataset]} == PAPER_RECIPE[dataset], dataset
        assert opts["momentum"] == 0.9 and opts["warmup_epochs"] == 0
        aug = opts["augment"]
        if dataset == "imagenet":
            assert aug["color_jitter"] == [0.2, 0.2, 0.2, 0.1] and not aug["autoaugment"]
        else:  # RandomCrop(32, 4) + flip + AutoAugment CIFAR-10 policy + Cutout 16
            assert aug == {"crop_padding": 4, "flip": True, "autoaugment": True, "cutout": 16}
            assert len(opts["data_options"]["std"]) == 3


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


def test_presets_come_from_the_caller_not_the_checkout(tmp_path, monkeypatch):
    """An installed qac has no workflow/ beside it: resolve_config reads only the preset
    directory it is given (and the schema beside it), never the package's location."""
    import qac.workflow as wf

    shutil.copytree(PRESETS, tmp_path / "presets")
    shutil.copytree(REPO / "workflow" / "schemas", tmp_path / "schemas")
    (tmp_path / "presets" / "smoke.yaml").write_text("train: {epochs: 7}\n", "utf-8")
    missing = tmp_path / "no-checkout"
    monkeypatch.setattr(wf, "ROOT", missing)
    monkeypatch.setattr(wf, "PRESET_DIR", missing / "workflow" / "presets")
    monkeypatch.setattr(wf, "SCHEMA", missing / "workflow" / "schemas" / "config.schema.yaml")
    cfg = wf.resolve_config({"scale": "smoke"}, tmp_path / "presets")
    assert cfg["train"]["epochs"] == 7 and cfg["scale"] == "smoke"
    with pytest.raises(ValueError, match="bad configuration"):  # validated with that schema
        wf.resolve_config({"scale": "smoke", "no_such_key": 1}, tmp_path / "presets")
    with pytest.raises(TypeError):  # no default: the caller names the presets
        wf.resolve_config({"scale": "smoke"})  # type: ignore[call-arg]


def test_grid_covers_every_experiment():
    cfg = resolve_config({"scale": "cpu"}, PRESETS)
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

    from qac.report.tables import EXPECTED_COLUMNS

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
    with Image.open(fig / "training.png") as im:  # the training-curves target
        assert im.size[0] > 300 and im.size[1] > 200
    for name in ["comparison.csv", "comparison.md", "claims.md", "audit.md"]:
        assert (res / name).stat().st_size > 100, name
    claims = (res / "claims.md").read_text()
    assert "C1" in claims and "C7" in claims
    # what the run wrote about itself (the Snakefile's onstart/onsuccess hooks,
    # qac/report/runsummary.py): one success row for the fixture's one run...
    wall = read_wall_time(res / "wall_time.tsv")
    assert list(wall["status"]) == ["success"], wall.to_string()
    assert wall["jobs"].iloc[0] > 0 and wall["seconds"].iloc[0] > 0
    readme = (res / "README.md").read_text()
    assert readme.count("**Total: 1 piece, ") == 1 and "(none failed)**" in readme
    assert "from an earlier run" not in readme  # tidy.csv was built by that run
    # ...and none for a run with nothing to do (Snakemake calls no hook then)
    proc = snakemake(smoke_run, "--cores", "1", "all", "--config", "scale=smoke")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr
    assert len(read_wall_time(res / "wall_time.tsv")) == 1


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
    from qac.paper.claims import check_c1_ann_equivalence

    assert check_c1_ann_equivalence(tidy).status == "holds"


def golden_mismatches(golden: pd.DataFrame, ours: pd.DataFrame) -> list[str]:
    """Why ``ours`` differs from the golden snapshot beyond the stated tolerances (empty: equal)."""
    merged = golden.merge(
        ours, on=GOLDEN_KEY, how="outer", suffixes=("_golden", "_ours"), indicator=True
    )
    problems = [
        f"row only in {'the snapshot' if row['_merge'] == 'left_only' else 'this run'}: "
        f"{dict(row[GOLDEN_KEY])}"
        for _, row in merged[merged["_merge"] != "both"].iterrows()
    ]
    moved = []
    for _, row in merged[merged["_merge"] == "both"].iterrows():
        a, b = float(row["value_golden"]), float(row["value_ours"])
        if (pd.isna(a) and pd.isna(b)) or a == b:
            continue
        what = f"{dict(row[GOLDEN_KEY])}: golden {a!r}, this run {b!r}"
        if row["unit_golden"] == "%":
            moved.append(what)
            if not abs(a - b) <= GOLDEN_ACC_TOLERANCE_PP:
                problems.append(f"accuracy moved by more than one image: {what}")
        elif not abs(a - b) <= GOLDEN_RTOL * max(abs(a), abs(b)):
            problems.append(f"value differs beyond rtol {GOLDEN_RTOL}: {what}")
    if len(moved) > GOLDEN_MAX_MOVED:
        problems.append(f"{len(moved)} accuracies moved (at most {GOLDEN_MAX_MOVED}): {moved[:5]}")
    return problems


def test_golden_comparison_catches_regressions():
    golden = pd.read_csv(GOLDEN)
    assert golden_mismatches(golden, golden.copy()) == []
    acc = golden.index[golden["unit"] == "%"]
    one_image = golden.copy()
    one_image.loc[acc[0], "value"] += 0.5
    assert golden_mismatches(golden, one_image) == []  # a single tie flip is tolerated
    worse = golden.copy()
    worse.loc[acc[0], "value"] += 1.5
    assert "more than one image" in " ".join(golden_mismatches(golden, worse))
    many = golden.copy()
    many.loc[acc[: GOLDEN_MAX_MOVED + 1], "value"] += 0.5
    assert "accuracies moved" in " ".join(golden_mismatches(golden, many))
    energy = golden.copy()
    row = golden.index[golden["unit"] == "pJ"][0]
    energy.loc[row, "value"] *= 1 + 1e-4
    assert "rtol" in " ".join(golden_mismatches(golden, energy))
    assert "only in the snapshot" in " ".join(golden_mismatches(golden, golden.iloc[1:]))


@pytest.mark.slow
def test_smoke_results_equal_the_golden_snapshot(smoke_run):
    """Regenerate deliberately with: python scripts/update_golden.py <workdir>/results/smoke."""
    if not GOLDEN.exists():
        pytest.fail(f"golden snapshot {GOLDEN} is missing: run scripts/update_golden.py")
    ours = pd.read_csv(smoke_run / "results" / "smoke" / "tidy.csv")
    problems = golden_mismatches(pd.read_csv(GOLDEN), ours)
    assert not problems, "\n".join(problems[:20])
