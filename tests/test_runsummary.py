"""What a finished run writes about itself (qac/report/runsummary.py): wall_time.tsv rows (the
total of every piece, failed ones included; --reset starts a new measurement), the time per stage
from Snakemake's benchmark files, the headline numbers (marked when tidy.csv is older than the
newest evaluation), the scale's floors (met, NOT met, not run) in results/<scale>/README.md; the
run-summary command's configuration (--presets, --config); layers.csv of every model; and the
workflow's `summary` target asking for layers.csv (a dry run, which writes nothing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from qac.report import runsummary as rs
from qac.report.cli import main as report_main
from qac.report.collect import LAYER_COLUMNS, read_layers, write_csv

REPO = Path(__file__).resolve().parents[1]
#: The report fixtures' evaluations (as tests/conftest.py's ``tidy`` and ``layers`` read them).
REPORT_EVAL_FILES = sorted(str(p) for p in (REPO / "tests/fixtures/report/eval").glob("*/*/*.json"))
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
T0 = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)
HOST = {"cpu": "Test CPU", "cores": 2, "torch": "0.0", "python": "3.11"}
# The fixtures: ResNet-20 case-4 ANN 8.59 %, SNN 5.47 % at T 4.00 (1 distinct per-layer T);
# VGG-16 case-4 SNN 11.00 % (5 distinct T); VGG-16 QCFS L=4 ANN 10.16 %; no ResNet-18.
FLOORS = {
    "resnet20": {"ann": 8, "snn": 84, "max_mean_T": 4},
    "vgg16": {"snn": 11},
    "resnet18": {"snn": 82},
    "qcfs_ann": 10,
    "min_distinct_T": 3,
}


def bench(root: Path, rel: str, *rows: tuple[float, str]) -> None:
    """A Snakemake benchmark file ``root/rel`` with one line per (seconds, cpu_time)."""
    path = root / "runs" / "benchmarks" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{s:.2f}\t0:00:00\t800.0\t3000.0\t300.0\t400.0\t0.0\t0.0\t50.0\t{c}\n"
                   for s, c in rows)  # fmt: skip
    path.write_text(HEADER + body)


@pytest.fixture
def results(tmp_path, tidy, layers) -> Path:
    """A results directory: benchmarks of every stage, three runs, tidy.csv and layers.csv."""
    res = tmp_path / "results" / "cpu"
    bench(res, "train/cifar10/resnet20/relu.tsv", (1000.0, "1900.4"))
    bench(res, "train/cifar10/vgg16/relu.tsv", (500.0, "990.0"))
    bench(res, "train/cifar10/resnet20/qac-c4.tsv", (100.0, "150.0"), (20.0, "30.0"))  # 2 repeats
    bench(res, "calibrate/cifar10/resnet20.tsv", (60.0, "100.0"))
    bench(res, "evaluate/cifar10/resnet20/qac-c4.tsv", (30.0, "50.0"))
    bench(res, "report/tables/table1.tsv", (3.0, "NA"))  # Snakemake's NA: not counted
    bench(res, "report/summary.tsv", (2.0, "4.0"))
    wall = res / "wall_time.tsv"
    rs.record_run(
        wall, T0, T0 + timedelta(seconds=3000), "success", jobs=3, command="snakemake -c 2"
    )
    rs.record_run(wall, T0 + timedelta(hours=2), T0 + timedelta(hours=2, seconds=90), "error",
                  jobs=0, command=["snakemake", "--cores", "2", "all"])  # fmt: skip
    rs.record_run(wall, T0 + timedelta(hours=3), T0 + timedelta(hours=3, seconds=1200), "success",
                  command="snakemake --cores 2 all\t--config scale=cpu")  # fmt: skip
    write_csv(tidy, res / "tidy.csv")
    write_csv(layers, res / "layers.csv")
    touch(res / "tidy.csv", T0 + timedelta(hours=4))  # no runs/eval here: never marked stale
    return res


def touch(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def readme(res: Path, floors=FLOORS) -> str:
    now = T0 + timedelta(days=1)
    path = rs.write_run_summary(res, "cpu", floors=floors, main_policy="aver+aver", host=HOST,
                                now=now)  # fmt: skip
    return path.read_text()


def test_wall_time_rows_append_under_one_header(results):
    text = (results / "wall_time.tsv").read_text().splitlines()
    assert text[0].split("\t") == list(rs.WALL_TIME_COLUMNS)
    assert len(text) == 4 and all(len(line.split("\t")) == 7 for line in text)
    wall = rs.read_wall_time(results / "wall_time.tsv")
    assert list(wall["seconds"]) == [3000, 90, 1200]
    assert list(wall["status"]) == ["success", "error", "success"]
    assert wall["start_utc"][0] == "2026-11-01T12:00:00Z"
    assert wall["command"][1] == "snakemake --cores 2 all"
    assert wall["command"][2] == "snakemake --cores 2 all --config scale=cpu"  # no tab
    assert pd.isna(wall["jobs"][2]) and wall["jobs"][0] == 3
    with pytest.raises(ValueError, match="status"):
        rs.record_run(results / "wall_time.tsv", T0, T0, "done")


def test_stage_table_sums_the_benchmark_files(results):
    st = rs.stage_times(results / "runs" / "benchmarks").set_index("stage")
    assert list(st.index) == list(rs.STAGES)
    assert st.loc["pretraining", "jobs"] == 2
    assert st.loc["pretraining", "seconds"] == pytest.approx(1500.0)
    assert st.loc["pretraining", "cpu_seconds"] == pytest.approx(2890.4)
    assert st.loc["quantization-aware fine-tuning", "jobs"] == 1
    assert st.loc["quantization-aware fine-tuning", "seconds"] == pytest.approx(120.0)
    assert st.loc["calibration", "seconds"] == pytest.approx(60.0)
    assert st.loc["evaluation", "cpu_seconds"] == pytest.approx(50.0)
    assert st.loc["report", "jobs"] == 2
    assert st.loc["report", "seconds"] == pytest.approx(5.0)
    assert st.loc["report", "cpu_seconds"] == pytest.approx(4.0)
    assert rs.stage_of("train/cifar10/vgg16/qcfs-L4.tsv") == "quantization-aware fine-tuning"
    assert rs.stage_of("tidy_all.tsv") == "report"


def test_readme_total_stages_headline_and_floors(results):
    text = readme(results)
    assert text.startswith(rs.BEGIN) and text.rstrip().endswith(rs.END)
    # total: every piece (3000 + 90 + 1200 s), the failed one included: its jobs are kept
    total = "**Total: 3 pieces, 1 h 11 min in all (of which 1 min 30 s in failed pieces)**"
    assert total + " (4,290 s): the sum of every Snakemake run" in text
    reset = "Deleting `wall_time.tsv` starts a new measurement (`qac report run-summary --scale cpu"
    assert rs.RESET_NOTE.format(scale="cpu") in text and reset in text
    assert rs.STALE_NOTE not in text  # no evaluation files in this fixture (the stale case: below)
    assert "Machine: Test CPU, 2 cores; torch 0.0" in text
    # the stage table, and its total row
    assert "| pretraining | 2 | 25 min 00 s | 1,500 | 2,890 |" in text
    assert "| quantization-aware fine-tuning | 1 | 2 min 00 s | 120 | 180 |" in text
    assert "| report | 2 | 5 s | 5 | 4 |" in text
    assert "| **all** | 7 | 28 min 35 s | 1,715 | 3,224 |" in text
    assert "Jobs ran up to 2 at a time, so the sums exceed the wall time." in text
    # headline (2 decimals) with the Wilson interval
    assert "| ResNet-20 / CIFAR-10 | 8.59 | 5.47 | [2.67, 10.86] | 128 | 4.00 |" in text
    assert "| VGG-16 / CIFAR-10 | 11.50 | 11.00 | [6.63, 17.52] | 128 | 2.47 |" in text
    assert "| VGG-16 / CIFAR-10 | 4 | 10.16 |" in text  # QCFS ANN
    # floors: met, NOT met (never hidden), not run
    assert "| ResNet-20 / CIFAR-10 case-4 ANN % | >= 8 | 8.59 | met |" in text
    assert "| ResNet-20 / CIFAR-10 case-4 calibrated SNN % | >= 84 | 5.47 | **NOT met** |" in text
    assert "| ResNet-20 / CIFAR-10 case-4 calibrated SNN average T | <= 4 | 4.00 | met |" in text
    assert "| VGG-16 / CIFAR-10 case-4 calibrated SNN % | >= 11 | 11.00 | met |" in text
    assert "| ResNet-18 case-4 calibrated SNN % | >= 82 | not run | **not run** |" in text
    assert "| VGG-16 / CIFAR-10 QCFS L=4 ANN % | >= 10 | 10.16 | met |" in text
    assert "| VGG-16 / CIFAR-10 qac-c4 distinct per-layer T | >= 3 | 5 | met |" in text
    assert "| ResNet-20 / CIFAR-10 qac-c4 distinct per-layer T | >= 3 | 1 | **NOT met** |" in text
    assert "5 of 8 met, 2 NOT met, 1 not run" in text


def test_total_of_pieces_without_failures(tmp_path):
    res = tmp_path / "results" / "cpu"
    rs.record_run(res / "wall_time.tsv", T0, T0 + timedelta(seconds=45), "success", jobs=2)
    text = readme(res)
    assert "**Total: 1 piece, 45 s in all (none failed)**: the sum" in text
    rs.record_run(res / "wall_time.tsv", T0, T0 + timedelta(seconds=30), "error", jobs=1)
    assert "**Total: 2 pieces, 1 min 15 s in all (of which 30 s in failed pieces)** (75 s)" in (
        readme(res)
    )


def test_results_older_than_the_newest_evaluation_are_marked(results):
    headings = [
        f"## Headline numbers {rs.STALE_NOTE}",
        f"## Acceptance floors {rs.STALE_NOTE}",
    ]
    assert rs.STALE_NOTE == "(from an earlier run: tidy.csv older than the newest evaluation)"
    assert not any(h in readme(results) for h in headings)  # no evaluations: cannot tell
    evaluation = results / "runs" / "eval" / "cifar10" / "resnet20" / "qac-c4.json"
    evaluation.parent.mkdir(parents=True)
    evaluation.write_text("{}")
    touch(evaluation, T0 + timedelta(hours=3))
    touch(results / "tidy.csv", T0 + timedelta(hours=3) - timedelta(seconds=1))
    text = readme(results)
    assert all(h in text for h in headings)
    assert "## Wall time\n" in text and "## Time per stage\n" in text  # those are current
    touch(results / "tidy.csv", T0 + timedelta(hours=3))  # built from that evaluation
    assert not any(h in readme(results) for h in headings)
    (results / "tidy.csv").unlink()  # not built: said so, not marked
    assert rs.STALE_NOTE not in readme(results)


def test_reset_starts_a_new_measurement(results, capsys):
    wall = results / "wall_time.tsv"
    rows = wall.read_text()
    moved = rs.reset_wall_time(wall, now=T0 + timedelta(days=1))
    assert moved == results / "wall_time.20261102T120000Z.tsv" and moved.read_text() == rows
    assert not wall.exists() and rs.reset_wall_time(wall) is None
    wall.write_text(rows)
    again = rs.reset_wall_time(wall, now=T0 + timedelta(days=1))  # same second: not overwritten
    assert again == results / "wall_time.20261102T120000Z-1.tsv" and moved.read_text() == rows
    wall.write_text(rows)
    capsys.readouterr()
    argv = ["run-summary", "--scale", "cpu", "--results-dir", str(results), "--reset"]
    assert report_main(argv) == 0
    out = capsys.readouterr().out
    assert f"{wall}: moved to {results}/wall_time." in out
    assert not wall.exists() and len(list(results.glob("wall_time.*.tsv"))) == 3
    text = (results / "README.md").read_text()
    assert "No run recorded in `wall_time.tsv`" in text
    assert rs.RESET_NOTE.format(scale="cpu") in text
    assert report_main(argv) == 0 and "none to reset" in capsys.readouterr().out
    # the next run's row starts the new file, under its header
    rs.record_run(wall, T0, T0 + timedelta(seconds=60), "success", jobs=1)
    assert len(rs.read_wall_time(wall)) == 1


def test_floors_compare_the_printed_value():
    assert rs.Floor("x", ">=", 85, 84.996).verdict == "met"  # printed as 85.00
    assert rs.Floor("x", ">=", 85, 84.994).verdict == "NOT met"
    assert rs.Floor("x", "<=", 4, 4.004).verdict == "met"
    assert rs.Floor("x", "<=", 4, 4.01).verdict == "NOT met"
    assert rs.Floor("x", ">=", 85, float("nan")).verdict == "not run"


def test_readme_without_results_says_not_run(tmp_path):
    res = tmp_path / "results" / "cpu"
    res.mkdir(parents=True)
    text = readme(res)
    assert "No run recorded in `wall_time.tsv`" in text
    assert "No benchmark files" in text
    assert "`tidy.csv` is not built yet" in text
    assert "0 of 7 met, 0 NOT met, 7 not run" in text
    assert "| every QCFS model ANN % | >= 10 | not run | **not run** |" in text
    assert "No `floors` configured" in readme(res, floors=None)


def test_readme_keeps_text_outside_the_generated_marks(results):
    readme(results)
    path = results / "README.md"
    path.write_text("Notes before.\n\n" + path.read_text() + "\nNotes after.\n")
    text = readme(results)
    assert text.startswith("Notes before.\n\n" + rs.BEGIN) and text.endswith(
        rs.END + "\n\nNotes after.\n"
    )
    assert text.count(rs.BEGIN) == 1
    # a README without marks (or with an end mark lost): the reader's text is kept below
    path.write_text("My own notes.\n")
    text = readme(results)
    assert text.startswith(rs.BEGIN) and text.endswith(rs.END + "\n\nMy own notes.\n")
    path.write_text(text.replace(rs.END, ""))
    text = readme(results)
    assert text.count(rs.BEGIN) == 1 and text.count(rs.END) == 1
    assert text.endswith("My own notes.\n") and text.count("# Results of the `cpu` scale") == 2


def test_finish_run_records_errors_and_never_raises(tmp_path, capsys):
    res = tmp_path / "results" / "cpu"
    cfg = {"scale": "cpu", "floors": {"qcfs_ann": 78}, "main_policy": "aver+aver"}
    rs.finish_run(res, "error", start=T0, config=cfg, command="snakemake all")
    assert (res / "wall_time.tsv").is_file() and not (res / "README.md").exists()
    rs.finish_run(res, "success", start=T0, config=cfg, command="snakemake all")
    assert "every QCFS model ANN % | >= 78" in (res / "README.md").read_text()
    assert list(rs.read_wall_time(res / "wall_time.tsv")["status"]) == ["error", "success"]
    (res / "tidy.csv").write_text("not,a,tidy\n1,2,3\n")  # a broken input: warn, do not raise
    rs.finish_run(res, "success", start=T0, config=cfg, command="snakemake all")
    assert "run summary not written" in capsys.readouterr().err
    assert len(rs.read_wall_time(res / "wall_time.tsv")) == 3


def test_a_snakemake_log_gives_the_row_of_a_run_without_hooks(tmp_path):
    log = tmp_path / "2026-11-29T232750.740422.snakemake.log"
    head = "  Date: 2026-11-29 23:27:50\n  Command: snakemake --cores 2 all\n"
    log.write_text(head + "Finished jobid: 1 (Rule: train)\n")
    with pytest.raises(ValueError, match="still running.*add it with --killed"):
        rs.run_from_log(log)
    cut = datetime(2026, 11, 29, 23, 57, 50).timestamp()  # killed: the log's last change
    os.utime(log, (cut, cut))
    assert rs.add_log(tmp_path / "killed.tsv", log, killed=True)
    killed = rs.read_wall_time(tmp_path / "killed.tsv").iloc[0]
    assert killed["status"] == "error" and killed["jobs"] == 1 and killed["seconds"] == 1800
    log.write_text(head + "Finished jobid: 1 (Rule: train)\nFinished jobid: 0 (Rule: all)\n"
                   "2 of 2 steps (100%) done\n")  # fmt: skip
    end = datetime(2026, 11, 30, 0, 27, 50).timestamp()
    os.utime(log, (end, end))
    run = rs.run_from_log(log)
    assert run["status"] == "success" and run["jobs"] == 2
    assert run["command"] == "snakemake --cores 2 all"
    wall = tmp_path / "wall_time.tsv"
    assert rs.add_log(wall, log) and not rs.add_log(wall, log)  # recorded once
    row = rs.read_wall_time(wall).iloc[0]
    assert row["seconds"] == 3600 and row["status"] == "success"
    failed = tmp_path / "2026-11-30T010000.000000.snakemake.log"
    failed.write_text(head + "Error in rule train:\n")
    assert rs.run_from_log(failed)["status"] == "error"
    dry = tmp_path / "2026-11-30T020000.000000.snakemake.log"
    dry.write_text(head + "This was a dry-run (flag -n).\n")
    with pytest.raises(ValueError, match="dry run"):
        rs.run_from_log(dry)


def test_run_summary_command_reads_the_scale_floors(results, capsys, tmp_path, monkeypatch):
    # from elsewhere: the checkout's presets and config.yaml (the Snakefile's), not the cwd's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("floors: {qcfs_ann: 1}\n")
    assert report_main(["run-summary", "--scale", "cpu", "--results-dir", str(results)]) == 0
    text = (results / "README.md").read_text()
    # workflow/presets/cpu.yaml's floors (issue #11): the fixtures' models are far below them
    assert "| ResNet-20 / CIFAR-10 case-4 ANN % | >= 85 | 8.59 | **NOT met** |" in text
    assert "| ResNet-18 case-4 calibrated SNN % | >= 82 | not run | **not run** |" in text
    assert "Setting: CPU scale" in text
    assert ">= 1 |" not in text
    # --config: that file over the presets
    argv = ["run-summary", "--scale", "cpu", "--results-dir", str(results)]
    assert report_main([*argv, "--config", str(tmp_path / "config.yaml")]) == 0
    assert (
        "| VGG-16 / CIFAR-10 QCFS L=4 ANN % | >= 1 | 10.16 | met |"
        in (results / "README.md").read_text()
    )


@pytest.mark.parametrize("option", ["--presets", "--config"])
def test_run_summary_command_names_a_wrong_path(results, capsys, tmp_path, option):
    wrong = tmp_path / "no" / ("presets" if option == "--presets" else "config.yaml")
    before = (results / "README.md").exists()
    argv = ["run-summary", "--scale", "cpu", "--results-dir", str(results), option, str(wrong)]
    assert report_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qac.report: error:")
    assert f"{option} {wrong}" in err[0]
    assert (results / "README.md").exists() == before  # nothing written
    if option == "--presets":  # a folder without defaults.yaml: an error, not the checkout's
        wrong.mkdir(parents=True)
        assert report_main(argv) == 2 and str(wrong) in capsys.readouterr().err


def test_layers_csv_has_every_layer_of_every_model(tmp_path):
    out = tmp_path / "layers.csv"
    assert report_main(["layers", "--scale", "cpu", "--out", str(out), *REPORT_EVAL_FILES]) == 0
    df = read_layers(out)
    assert list(df.columns) == list(LAYER_COLUMNS)
    models = set(zip(df["dataset"], df["architecture"], df["act"], strict=True))
    assert len(models) == len(REPORT_EVAL_FILES)
    c4 = df[(df["architecture"] == "vgg16") & (df["act"] == "qac-c4")]
    assert list(c4["layer_index"]) == list(range(len(c4))) and len(c4) > 5
    assert c4["T"].notna().all() and c4["alpha"].notna().all() and c4["bits"].notna().all()
    assert set(df["scale"]) == {"cpu"}


@pytest.mark.skipif(
    shutil.which(SNAKEMAKE) is None and not Path(SNAKEMAKE).exists(),
    reason="snakemake is not installed (pip install -e '.[workflow]')",
)
def test_summary_target_builds_layers_csv(tmp_path):
    """A dry run of `summary` (3 s) plans layers.csv and writes nothing: no hook runs."""
    cmd = [
        SNAKEMAKE,
        "--snakefile", str(REPO / "workflow" / "Snakefile"),
        "--directory", str(tmp_path),
        "--workflow-profile", "none",
        "-n", "summary", "--config", "scale=cpu",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "output: results/cpu/layers.csv" in out
    assert any(line.split() == ["layers_all", "1"] for line in out.splitlines())
    assert not (tmp_path / "results").exists()  # neither wall_time.tsv nor README.md
