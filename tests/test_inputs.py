"""Bad inputs of the ``qac`` CLI and of the workflow configuration: each gives ONE line that
names the fix, before any data is read or any model evaluated (no traceback, no wrong number)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import qac.cli as cli
import qac.commands.inputs as cli_inputs
from qac.checkpoint import model_spec, save_checkpoint
from qac.cli import main
from qac.models import build
from qac.workflow import PRESET_DIR, Model, deep_merge, load_yaml, resolve_config, train_options

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or "snakemake"
ACT = {"name": "qac", "case": 4, "alpha": 4.0, "timesteps": 4}
SYNTH = {"train_size": 64, "test_size": 32}


def write_checkpoint(path: Path, num_classes: int = 10, activation: dict | None = None) -> Path:
    """An untrained resnet20 checkpoint as 'qac train' writes it (no training needed)."""
    activation = activation or ACT
    model = build("resnet20", num_classes, activation, width=0.25)
    config = {"dataset": "synthetic-cifar10", "data_options": SYNTH, "data_seed": 0}
    spec = model_spec("resnet20", num_classes, activation, 0.25)
    save_checkpoint(path, spec, model, metrics={}, config=config)
    return path


def image_tree(root: Path, classes: str) -> Path:
    """An ImageFolder tree (train/ and test/) with one 8x8 PNG per class."""
    from PIL import Image

    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(root / split / c / "x.png")
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt")


@pytest.fixture
def no_data(monkeypatch):
    """Fail the test if a dataset or an evaluation is reached: errors must come first."""

    def forbidden(*args, **kwargs):
        raise AssertionError("data loaded / model evaluated before the input error")

    monkeypatch.setattr(cli_inputs, "load_dataset", forbidden)
    monkeypatch.setattr("qac.evaluate.evaluate_ann", forbidden)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """(exit status, stderr) of ``qac ARGV``; argparse errors count as exit status 2."""
    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err.strip()
    return rc, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------------------
# 1. a checkpoint evaluated on a dataset with other classes
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
def test_class_count_mismatch_is_refused_before_loading(ckpt, tmp_path, capsys, command, no_data):
    rc, err = run_cli(
        capsys, command, "--checkpoint", str(ckpt), "--out", str(tmp_path / "o"),
        "--data", "synthetic-cifar100", "--device", "cpu",
    )  # fmt: skip
    line = one_error_line(err)
    assert rc == 2 and "predicts 10 classes" in line and "has 100" in line
    assert "--data synthetic-cifar10" in line
    assert not (tmp_path / "o").exists()


def test_class_count_mismatch_of_a_folder(ckpt, tmp_path, capsys, no_data):
    tree = image_tree(tmp_path / "tree", "abcd")
    rc, err = run_cli(
        capsys, "evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o.json"),
        "--data", f"folder:{tree}",
    )  # fmt: skip
    assert rc == 2 and "has 4" in one_error_line(err)


# ------------------------------------------------------------------------------------------
# 2. empty experiment lists, and a grid without models
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "user, needle",
    [
        ({"experiments": {"main": {"models": []}}}, "experiments.main.models: [] should be non"),
        ({"experiments": {"main": {"models": {}}}}, "experiments.main.models: {} should be non"),
        ({"experiments": {"qcfs": {"levels": []}}}, "experiments.qcfs.levels"),
        ({"experiments": {"scaling": {"k": "[]"}}}, "experiments.scaling.k"),
        ({"experiments": {"main": {"models": None}}}, "'models' is a required property"),
        ({"experiments": {"layers": {"models": {"fig1": None}}}}, "'fig1' is a required"),
        ({"data_root": None}, "'data_root' is a required property"),
    ],
)
def test_empty_or_cleared_grid_is_one_line(user, needle):
    with pytest.raises(ValueError, match="bad configuration") as info:
        resolve_config({"scale": "smoke", **user}, PRESET_DIR)
    assert needle in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------
# 3. floats in every notation
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value", [("1e-3", 1e-3), ("5E-4", 5e-4), (".5", 0.5), ("1.0e+2", 100.0), ("2E+3", 2e3)]
)
def test_yaml_floats_in_any_notation(text, value):
    assert load_yaml(f"x: {text}") == {"x": value}
    assert load_yaml(f"x: '{text}'") == {"x": text}  # quoted: still a string
    assert cli_inputs.parse_set([f"lr={text}"]) == {"lr": value}
    cfg = resolve_config({"scale": "smoke", "train": {"weight_decay": text}}, PRESET_DIR)
    assert cfg["train"]["weight_decay"] == value


def test_config_file_float_reaches_training(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_train(cfg, out, resume=True):
        seen["cfg"] = cfg
        return {"ann_acc": 0.0}

    monkeypatch.setattr("qac.train.train", fake_train)
    (tmp_path / "c.yaml").write_text("weight_decay: 5e-4\nepochs: 1\n")
    rc, err = run_cli(
        capsys, "train", "--config", str(tmp_path / "c.yaml"), "--set", "lr=1e-3",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert rc == 0, err
    assert seen["cfg"].weight_decay == 5e-4 and seen["cfg"].lr == 1e-3


def test_non_number_option_is_one_line(tmp_path, capsys):
    rc, err = run_cli(capsys, "train", "--set", "epochs=two", "--out", str(tmp_path / "run"))
    assert rc == 2 and "epochs" in one_error_line(err)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------
# 4. clearing a preset mapping; options the source does not take
# ------------------------------------------------------------------------------------------
def test_null_clears_a_preset_mapping():
    assert deep_merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"x": None, "z": 3}}) == {
        "a": {"y": 2, "z": 3},
        "b": 1,
    }
    user = {
        "datasets": {"cifar10": "folder:/data/x"},
        "data_options": {"cifar10": "null"},  # as Snakemake passes --config values on
    }
    cfg = resolve_config({"scale": "smoke", **user}, PRESET_DIR)
    assert "cifar10" not in cfg["data_options"]
    assert train_options(cfg, Model("cifar10", "resnet20", "qac-c4"))["data_options"] == {}
    cpu = resolve_config({"scale": "cpu"}, PRESET_DIR)  # the preset's nulls: "not available"
    assert cpu["datasets"].get("cifar100") is None and "cifar10" in cpu["datasets"]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        SNAKEMAKE, "--snakefile", str(REPO / "workflow" / "Snakefile"), "--directory",
        str(workdir), "--workflow-profile", "none", *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


needs_snakemake = pytest.mark.skipif(
    shutil.which(SNAKEMAKE) is None and not Path(SNAKEMAKE).exists(),
    reason="snakemake is not installed",
)


@needs_snakemake
def test_workflow_rejects_options_the_source_does_not_take(tmp_path):
    tree = image_tree(tmp_path / "tree", "ab")
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(
        work, "--cores", "1", "table1",
        "--config", "scale=smoke", f"datasets={{cifar10: 'folder:{tree}'}}",
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "train_size" in out and "data_options={cifar10: null}" in out
    assert not (work / "checkpoints").exists() and not (work / "results").exists()


@needs_snakemake
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_workflow_device_cuda_without_gpu_fails_first(tmp_path):
    proc = snakemake(tmp_path, "--cores", "1", "table1", "--config", "scale=smoke", "device=cuda")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "device=cuda but no CUDA GPU is visible: use device=cpu or auto" in out
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results").exists()


# ------------------------------------------------------------------------------------------
# 5. tracebacks and cut messages
# ------------------------------------------------------------------------------------------
def test_bad_yaml_config_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "cfg.yaml"
    bad.write_text("epochs: 3\nlr: [0.1\n")
    rc, err = run_cli(capsys, "train", "--config", str(bad), "--out", str(tmp_path / "run"))
    line = one_error_line(err)
    assert rc == 2 and str(bad) in line and "line 3" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
def test_device_cuda_without_gpu_is_one_line(ckpt, tmp_path, capsys, no_data):
    rc, err = run_cli(
        capsys, "evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o.json"),
        "--device", "cuda",
    )  # fmt: skip
    line = one_error_line(err)
    assert rc == 2 and "device=cuda but no CUDA GPU is visible: use device=cpu or auto" in line
    rc, err = run_cli(capsys, "train", "--set", "device=cuda", "--out", str(tmp_path / "r"))
    assert rc == 2 and "no CUDA GPU" in one_error_line(err)


def test_train_out_on_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("qac.train.train", lambda *a, **k: pytest.fail("trained"))
    (tmp_path / "f").write_text("x")
    rc, err = run_cli(capsys, "train", "--set", "epochs=1", "--out", str(tmp_path / "f"))
    assert rc == 2 and "is a file" in one_error_line(err)


def test_calibration_text_file(ckpt, tmp_path, capsys, no_data):
    (tmp_path / "cal.txt").write_text("not a calibration\n")
    rc, err = run_cli(
        capsys, "evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o.json"),
        "--calibration", str(tmp_path / "cal.txt"),
    )  # fmt: skip
    assert rc == 2 and "is not a 'qac calibrate' output" in one_error_line(err)


def test_calibration_of_another_model(ckpt, tmp_path, capsys, no_data):
    torch.save({"state": {"no.such.layer": {}}, "config": {}}, tmp_path / "cal.pt")
    rc, err = run_cli(
        capsys, "evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o.json"),
        "--calibration", str(tmp_path / "cal.pt"),
    )  # fmt: skip
    assert rc == 2 and "no.such.layer" in one_error_line(err)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--snn", "aver+aver", "--snn", "aver+aver,k=2", "--snn", "bogus"], "bogus"),
        (["--snn", "aver+aver,k=0"], "must be >= 1"),
        (["--snn", "aver+aver,T=x"], "expected an integer"),
        (["--snn", "aver+aver,speed=3"], "unknown part 'speed=3'"),
        (["--policy", "aver+sum"], "sum"),
        (["--sweep", "1,x"], "'x'"),
        (["--sweep", "0,4"], "must be >= 1"),
        (["--v0", "abc"], "got 'abc'"),
        (["--limit", "0"], "--limit: must be >= 1"),
        (["--limit", "-5"], "--limit: must be >= 1"),
        (["--batch-size", "0"], "--batch-size: must be >= 1"),
        (["--k", "0"], "--k: must be >= 1"),
        (["--snn", "aver+aver,cal"], "no --calibration"),
    ],
)
def test_every_evaluate_setting_is_checked_first(ckpt, tmp_path, capsys, no_data, args, needle):
    rc, err = run_cli(
        capsys, "evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o.json"), *args
    )
    assert rc == 2 and needle in one_error_line(err)


def test_quoted_value_keeps_its_closing_quote():
    exc = cli.ConfigError("--data takes a source, got 'abc'")
    assert cli._message(exc).endswith("got 'abc'")


def test_missing_key_and_multiline_messages_are_readable(tmp_path, capsys):
    torch.save({"format": "qac-checkpoint/1"}, tmp_path / "nospec.pt")
    rc, err = run_cli(capsys, "info", "--checkpoint", str(tmp_path / "nospec.pt"))
    line = one_error_line(err)
    assert rc == 2 and "has no 'spec'" in line and "not written by 'qac train'" in line
    cause = RuntimeError("Error(s) in loading state_dict for ResNet:\n\tsize mismatch for fc")
    try:
        raise cli.CheckpointError(f"does not fit: {str(cause).splitlines()[0]}") from cause
    except cli.CheckpointError as exc:
        assert cli._message(exc).endswith("for ResNet:; size mismatch for fc")
    assert cli._message(KeyError("spec")) == "missing key 'spec'"


def test_checkpoint_paths(tmp_path, capsys):
    rc, err = run_cli(capsys, "info", "--checkpoint", str(tmp_path / "none.pt"))
    assert rc == 2 and "does not exist" in one_error_line(err)
    rc, err = run_cli(capsys, "info", "--checkpoint", str(tmp_path))
    assert rc == 2 and "is a directory" in one_error_line(err)


def test_relu_checkpoint_with_snn_settings(tmp_path, capsys, no_data):
    relu = write_checkpoint(tmp_path / "relu.pt", activation={"name": "relu"})
    rc, err = run_cli(
        capsys, "evaluate", "--checkpoint", str(relu), "--out", str(tmp_path / "o.json"),
        "--snn", "aver+aver",
    )  # fmt: skip
    assert rc == 2 and "ReLU" in one_error_line(err)


def test_evaluate_out_on_a_directory(ckpt, tmp_path, capsys, no_data):
    rc, err = run_cli(capsys, "evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path))
    assert rc == 2 and "is a directory" in one_error_line(err)


def test_version_names_the_package_and_torch(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("qac ") and f"torch {torch.__version__}" in out


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_bad_thread_count_is_one_line(tmp_path, capsys, monkeypatch, value):
    monkeypatch.setenv("QAC_THREADS", value)
    monkeypatch.setattr("qac.train.train", lambda *a, **k: pytest.fail("trained"))
    rc, err = run_cli(capsys, "train", "--set", "epochs=1", "--out", str(tmp_path / "r"))
    assert rc == 2 and f"QAC_THREADS={value!r}" in one_error_line(err)


def test_bad_thread_count_in_benchmarks(capsys, monkeypatch):
    from benchmarks.run import main as bench_main

    monkeypatch.setenv("QAC_THREADS", "abc")
    assert bench_main(["--quick", "--only", "snn"]) == 2
    assert "QAC_THREADS='abc'" in capsys.readouterr().err
