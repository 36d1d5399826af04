"""The CPU scale: full CIFAR-10 train and test sets, the dataset source fallback
(``datasets.<id>: [source, ...]``, the first present wins) and Table 8's ``sweep_limit``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qac.cli import main
from qac.data import DatasetNotFoundError, check_source
from qac.workflow import (
    PRESET_DIR,
    SCHEMA,
    Model,
    all_models,
    eval_arguments,
    resolve_config,
    resolve_sources,
    train_options,
    validate_config,
)

TAR = "tar:../shared/data/cifar10-jpeg.tar.gz"


def _torchvision_root(tmp_path: Path) -> Path:
    """A data_root where ``check_source('cifar10')`` finds torchvision's CIFAR-10 folder."""
    root = tmp_path / "data"
    (root / "cifar-10-batches-py").mkdir(parents=True)
    return root


# ------------------------------------------------------------------------------------------
# the cpu preset: full train and test sets
# ------------------------------------------------------------------------------------------
def test_cpu_preset_uses_the_full_train_and_test_sets(tmp_path):
    cfg = resolve_config(
        {"scale": "cpu", "data_root": str(_torchvision_root(tmp_path))}, PRESET_DIR
    )
    assert "train_limit" not in cfg["train"] and "test_limit" not in cfg["train"]
    assert cfg["evaluation"].get("limit") is None
    for overrides in (cfg.get("train_overrides") or {}).values():
        assert "train_limit" not in overrides and "test_limit" not in overrides
    models = all_models(cfg)
    assert models
    for m in models:
        opts = train_options(cfg, m)
        assert opts.get("train_limit") is None and opts.get("test_limit") is None, m
        assert opts["dataset"] == "cifar10"  # one source, the one found
        args = eval_arguments(cfg, m)
        assert "--limit" not in args, m  # every accuracy over the 10,000 test images


def test_cpu_preset_lists_the_torchvision_files_before_the_jpeg_copy():
    from qac.workflow import load_yaml

    preset = load_yaml((PRESET_DIR / "cpu.yaml").read_text())
    assert preset["datasets"]["cifar10"] == ["cifar10", TAR]


# ------------------------------------------------------------------------------------------
# source fallback
# ------------------------------------------------------------------------------------------
def test_first_present_source_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "copy.tar.gz"
    archive.write_bytes(b"")
    sources = ["cifar10", f"tar:{archive}"]
    user = {"scale": "cpu", "data_root": str(tmp_path / "empty"), "datasets": {"cifar10": sources}}
    cfg = resolve_config(user, PRESET_DIR)
    assert cfg["datasets"]["cifar10"] == f"tar:{archive}"  # torchvision's files are absent
    assert f"tar:{archive}" in cfg["data_note"]
    m = Model("cifar10", "resnet20", "qac-c4")
    assert train_options(cfg, m)["dataset"] == f"tar:{archive}"
    user["data_root"] = str(_torchvision_root(tmp_path))
    cfg = resolve_config(user, PRESET_DIR)
    assert cfg["datasets"]["cifar10"] == "cifar10"  # both present: the first
    assert train_options(cfg, m)["dataset"] == "cifar10"
    assert "data: cifar10" in cfg["data_note"]


def test_no_source_present_names_every_place_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = {"scale": "cpu", "data_root": str(tmp_path / "nothing")}
    cfg = resolve_config(user, PRESET_DIR)  # dry runs and --lint work without the data ...
    assert cfg["datasets"]["cifar10"] == ["cifar10", TAR]
    with pytest.raises(DatasetNotFoundError) as info:  # ... the pre-run check does not
        check_source(cfg["datasets"]["cifar10"], root=cfg["data_root"])
    places = [
        str(tmp_path / "nothing" / "cifar-10-batches-py"),
        str((tmp_path / ".." / "shared/data/cifar10-jpeg.tar.gz").resolve()),
    ]
    msg = str(info.value)
    assert "\n" not in msg and all(p in msg for p in places), msg
    assert "download=True" in msg and "put the archive at" in msg
    with pytest.raises(ValueError) as info:  # strict: at once, with the ways out
        resolve_sources(resolve_config(user, PRESET_DIR), strict=True)
    msg = str(info.value)
    assert "\n" not in msg and all(p in msg for p in places), msg
    assert "datasets='{cifar10: null}'" in msg


def test_a_malformed_source_in_a_list_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = {"scale": "cpu", "data_root": str(tmp_path), "datasets": {"cifar10": ["cifar10", "x"]}}
    with pytest.raises(ValueError, match="datasets.cifar10: unknown dataset source 'x'"):
        resolve_config(user, PRESET_DIR)


def test_a_dataset_no_model_needs_is_not_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve_config({"scale": "smoke"}, PRESET_DIR)
    for exp in cfg["experiments"].values():  # a grid without CIFAR-10
        if isinstance(exp.get("models"), dict):
            exp["models"] = {k: v for k, v in exp["models"].items() if v[0] != "cifar10"}
        elif "models" in exp:
            exp["models"] = [p for p in exp["models"] if p[0] != "cifar10"]
        else:
            exp["datasets"] = [d for d in exp["datasets"] if d != "cifar10"]
    cfg["datasets"]["cifar10"] = ["cifar10", "tar:nowhere.tar.gz"]
    assert resolve_sources(cfg, strict=True)["datasets"]["cifar10"] == [
        "cifar10",
        "tar:nowhere.tar.gz",
    ]


SNAKEMAKE = Path(sys.executable).with_name("snakemake")


@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake is not installed")
def test_workflow_stops_before_any_job_when_no_source_is_present(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    repo = Path(__file__).resolve().parents[1]
    cmd = [
        str(SNAKEMAKE), "--snakefile", str(repo / "workflow" / "Snakefile"), "--directory",
        str(work), "--workflow-profile", "none", "--cores", "1", "table1",
        "--config", "scale=cpu", f"data_root={tmp_path / 'nothing'}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    line = next(x for x in out.splitlines() if "none of the sources" in x)
    assert str(tmp_path / "nothing" / "cifar-10-batches-py") in line
    assert str((tmp_path / "shared/data/cifar10-jpeg.tar.gz").resolve()) in line
    assert "datasets.cifar10: null" in line
    assert not (work / "checkpoints").exists() and not (work / "results").exists()


def test_download_option_makes_torchvision_cifar_present(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = {
        "scale": "cpu",
        "data_root": str(tmp_path / "nothing"),
        "data_options": {"cifar10": {"download": True}},
    }
    assert resolve_config(user, PRESET_DIR)["datasets"]["cifar10"] == "cifar10"


def test_data_note_placeholders_take_the_chosen_source(tmp_path):
    root = _torchvision_root(tmp_path)
    note = "CPU scale: CIFAR-10 from {source}; cifar10 = {cifar10}."
    cfg = resolve_config({"scale": "cpu", "data_root": str(root), "data_note": note}, PRESET_DIR)
    assert cfg["data_note"] == "CPU scale: CIFAR-10 from cifar10; cifar10 = cifar10."
    smoke = resolve_config({"scale": "smoke"}, PRESET_DIR)  # strings: note unchanged
    assert "(data:" not in smoke["data_note"]


def test_schema_takes_a_source_list_a_string_or_null():
    base = resolve_config({"scale": "smoke"}, PRESET_DIR)
    for entry in (["cifar10", TAR], "cifar10", None):
        validate_config({**base, "datasets": {"cifar10": entry}}, SCHEMA)
    for bad in ([], [1], ["cifar10", None], 3):
        with pytest.raises(ValueError, match="datasets.cifar10"):
            validate_config({**base, "datasets": {"cifar10": bad}}, SCHEMA)
    validate_config({**base, "evaluation": {"batch_size": 8, "sweep_limit": 100}}, SCHEMA)
    with pytest.raises(ValueError, match="evaluation.sweep_limit"):
        validate_config({**base, "evaluation": {"batch_size": 8, "sweep_limit": 0}}, SCHEMA)


# ------------------------------------------------------------------------------------------
# evaluation.sweep_limit: only the QCFS T sweeps (Table 8) on a subset
# ------------------------------------------------------------------------------------------
def test_sweep_limit_reaches_only_the_qcfs_sweep(tmp_path):
    root = str(_torchvision_root(tmp_path))
    user = {"scale": "cpu", "data_root": root, "evaluation": {"sweep_limit": 1000, "limit": None}}
    cfg = resolve_config(user, PRESET_DIR)
    qcfs = next(m for m in all_models(cfg) if m.activation.levels is not None)
    args = eval_arguments(cfg, qcfs)
    assert args[args.index("--sweep-limit") + 1] == "1000" and "--limit" not in args
    for m in all_models(cfg):
        if m.activation.levels is None:
            assert "--sweep-limit" not in eval_arguments(cfg, m)
    # a sweep limit not below evaluation.limit changes nothing
    user["evaluation"] = {"sweep_limit": 1000, "limit": 500}
    args = eval_arguments(resolve_config(user, PRESET_DIR), qcfs)
    assert "--sweep-limit" not in args and args[args.index("--limit") + 1] == "500"


@pytest.fixture(scope="module")
def qcfs_checkpoint(tmp_path_factory) -> Path:
    """A tiny QCFS (L = 4) ResNet-20 trained one epoch on synthetic data (100 test images)."""
    from qac.train import train
    from tests.train_helpers import tiny_config

    out = tmp_path_factory.mktemp("qcfs")
    cfg = tiny_config(
        epochs=1,
        data_options={"train_size": 64, "test_size": 100},
        activation={"name": "qcfs", "levels": 4, "theta": 8.0},
    )
    train(cfg, out)
    return out / "model.pt"


def test_sweep_limit_runs_the_sweep_on_a_balanced_subset(qcfs_checkpoint, tmp_path, capsys):
    from qac.report.collect import collect
    from qac.report.tables import make_table, table_markdown

    ev = tmp_path / "eval" / "cifar10" / "resnet20" / "qcfs-L4.json"
    argv = ["evaluate", "--checkpoint", str(qcfs_checkpoint), "--out", str(ev)]
    argv += ["--sweep", "1,2,4", "--sweep-limit", "40", "--model-id", "cifar10/resnet20/qcfs-L4"]
    assert main([*argv, "--batch-size", "32", "--no-progress"]) == 0
    data = json.loads(ev.read_text())
    assert data["ann"]["num_samples"] == data["ann"]["per_image"]["n"] == 100
    assert data["qcfs_sweep"]["num_samples"] == 40
    for method in ("qcfs", "qcfs+aver"):
        assert {r["n"] for r in data["qcfs_sweep_per_image"][method].values()} == {40}

    tidy = collect([ev], "cpu", check_spec=False)
    t8 = tidy[tidy["table"] == "table8"]
    assert set(t8.loc[t8["quantity"] == "ann_acc", "n"]) == {100}
    sweep = t8[t8["quantity"] == "snn_acc"]
    assert len(sweep) == 6 and set(sweep["n"]) == {40}
    table = make_table("table8", tidy, None, scale="cpu")
    ours = table[table["status"].astype(str).str.startswith(("ok", "partial"))]
    assert set(ours["n"]) == {40}
    assert ours["T1_ci_low"].notna().all() and ours["ann_acc_ci_low"].notna().all()
    note = table.attrs["sample_note"]
    assert "40 test images" in note and "over 100 test images" in note
    assert "class-balanced subset of 40" in " ".join(table_markdown(table, "Cap.").split())


def test_sweep_subset_is_the_one_limit_picks(qcfs_checkpoint, tmp_path):
    common = ["--checkpoint", str(qcfs_checkpoint), "--sweep", "2", "--no-progress"]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["evaluate", *common, "--out", str(a), "--sweep-limit", "30"]) == 0
    assert main(["evaluate", *common, "--out", str(b), "--limit", "30"]) == 0
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["qcfs_sweep_per_image"] == rb["qcfs_sweep_per_image"]
    assert ra["ann"]["num_samples"] == 100 and rb["ann"]["num_samples"] == 30


def test_sweep_limit_needs_a_sweep(qcfs_checkpoint, tmp_path, capsys):
    out = tmp_path / "x.json"
    argv = ["evaluate", "--checkpoint", str(qcfs_checkpoint), "--out", str(out)]
    assert main([*argv, "--sweep-limit", "10", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sweep-limit" in err[0]
    assert not out.exists()
