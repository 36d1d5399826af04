"""Training telemetry: one log line per epoch (also with --no-progress), log.csv beside log.jsonl,
and optional TensorBoard scalars (a one-line error when the package is missing)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import re
import sys
from pathlib import Path

import pytest

import qac.train as train_mod
from qac.cli import main
from qac.telemetry import CSV_COLUMNS, Telemetry, csv_text, epoch_line, mean_timesteps
from qac.train import ConfigError, TrainConfig, run_directory, train

OPTIONS = {
    "arch": "resnet20",
    "width": 0.25,
    "dataset": "synthetic-cifar10",
    "data_options": {"train_size": 128, "test_size": 64},
    "epochs": 2,
    "batch_size": 64,
    "lr": 0.05,
    "eval_every": 2,  # epoch 1 has no test accuracy
}
LAYERS = [{"layer": "a", "T": 2, "alpha": 1.0, "bits": 1.0}, {"layer": "b", "T": 4}]
RECORD = {"epoch": 3, "lr": 0.05, "train_loss": 1.23456, "train_acc": 50.0, "seconds": 2.04}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> tuple[Path, str]:
    """``qac train --no-progress`` of OPTIONS: (output directory, what it printed to stderr)."""
    out = tmp_path_factory.mktemp("run")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(
            ["train", "--config-json", json.dumps(OPTIONS), "--out", str(out), "--no-progress"]
        )
    assert rc == 0, err.getvalue()
    return out, err.getvalue()


# --------------------------------------------------------------------------------------------
# the log line and the CSV of epoch records
# --------------------------------------------------------------------------------------------
def test_epoch_line_names_every_quantity():
    line = epoch_line({**RECORD, "test_acc": 61.5, "layers": LAYERS}, 300)
    assert line == (
        "epoch 3/300  loss 1.2346  train acc 50.00%  test acc 61.50%  lr 0.05  mean T 3.00  2.0 s"
    )
    assert "test acc -" in epoch_line(RECORD, 300) and "mean T -" in epoch_line(RECORD, 300)


def test_mean_timesteps_of_a_record():
    assert mean_timesteps({"layers": LAYERS}) == 3.0
    assert mean_timesteps({"layers": [*LAYERS, {"T": "inf"}]}) == math.inf  # case 3
    assert mean_timesteps({"layers": []}) is None  # a ReLU network


def test_csv_has_one_row_per_record_and_empty_cells_for_missing_values():
    history = [{**RECORD, "epoch": 1, "layers": LAYERS}, {**RECORD, "epoch": 2, "test_acc": 9.5}]
    rows = list(csv.DictReader(io.StringIO(csv_text(history))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["test_acc"] == "" and rows[0]["mean_T"] == "3.0"
    assert rows[1]["test_acc"] == "9.5" and rows[1]["mean_T"] == ""
    assert float(rows[0]["train_loss"]) == RECORD["train_loss"]  # full precision


# --------------------------------------------------------------------------------------------
# a training run
# --------------------------------------------------------------------------------------------
def test_no_progress_still_prints_one_flushed_line_per_epoch(cli_run):
    _, err = cli_run
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert "it/s" not in err  # no progress bar
    assert [line.split("  ")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert "test acc -" in lines[0] and "test acc -" not in lines[1]
    assert all(re.search(r"  lr \S+  mean T \d+\.\d\d  \d+\.\d s$", line) for line in lines)


def test_log_csv_is_written_beside_log_jsonl_and_published(cli_run):
    out, _ = cli_run
    (run_dir,) = (out / "runs").iterdir()
    assert (out / "log.csv").read_bytes() == (run_dir / "log.csv").read_bytes()
    rows = read_csv(out / "log.csv")
    history = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(rows) == len(history) == 2
    for row, record in zip(rows, history, strict=True):
        assert int(row["epoch"]) == record["epoch"]
        for column in ("lr", "train_loss", "train_acc", "seconds"):
            assert float(row[column]) == record[column]
    assert rows[0]["test_acc"] == "" and float(rows[1]["test_acc"]) == history[1]["test_acc"]


def test_a_run_completed_without_log_csv_gets_one_without_retraining(
    cli_run, tmp_path, monkeypatch
):
    out, _ = cli_run
    copy = tmp_path / "copy"
    cfg = TrainConfig.from_dict({**OPTIONS, "progress": False})
    run_dir = run_directory(copy, cfg.fingerprint())
    run_dir.mkdir(parents=True)
    for name in ("log.jsonl", "metrics.json", "model.pt"):  # what an older version left
        (run_dir / name).write_bytes((out / name).read_bytes())
        (copy / name).write_bytes((out / name).read_bytes())
    monkeypatch.setattr(train_mod, "_train_run", lambda *a: pytest.fail("retrained"))
    train(cfg, copy)
    assert (copy / "log.csv").read_bytes() == (out / "log.csv").read_bytes()


# --------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------
def test_tensorboard_is_not_part_of_the_fingerprint():
    assert TrainConfig(tensorboard=True).fingerprint() == TrainConfig().fingerprint()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_missing_tensorboard_fails_at_once_with_the_install_command(tmp_path, monkeypatch, how):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    cfg = TrainConfig.from_dict({**OPTIONS, "tensorboard": how == "option"})
    if how == "environment":
        monkeypatch.setenv("QAC_TENSORBOARD", "1")
    with pytest.raises(ConfigError, match="pip install tensorboard") as info:
        train(cfg, tmp_path / "out")
    assert len(str(info.value).splitlines()) == 1
    assert not (tmp_path / "out").exists()


class FakeWriter:
    """Records what Telemetry gives a SummaryWriter."""

    made: list[FakeWriter] = []

    def __init__(self, log_dir: str, purge_step: int) -> None:
        self.log_dir, self.purge_step, self.scalars, self.closed = log_dir, purge_step, [], False
        FakeWriter.made.append(self)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.append((tag, value, step))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_tensorboard_gets_the_epoch_scalars_on_rank_0_only(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("qac.telemetry.check_tensorboard", lambda: FakeWriter)
    FakeWriter.made.clear()
    history = [{**RECORD, "layers": LAYERS}]
    with Telemetry(tmp_path, 5, active=True, tensorboard=True, first_epoch=2) as telemetry:
        telemetry.epoch(history)
    with Telemetry(tmp_path / "rank1", 5, active=False, tensorboard=True, first_epoch=2) as other:
        other.epoch(history)
    (writer,) = FakeWriter.made
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.purge_step == 3
    assert ("loss/train", RECORD["train_loss"], 3) in writer.scalars
    assert ("mean_T", 3.0, 3) in writer.scalars and writer.closed
    assert not any(tag == "accuracy/test" for tag, _, _ in writer.scalars)  # not evaluated
    assert capsys.readouterr().err.count("epoch 3/5") == 1
    assert not (tmp_path / "rank1").exists()


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    with Telemetry(tmp_path, 1, active=True, tensorboard=True, first_epoch=0) as telemetry:
        telemetry.epoch([{**RECORD, "epoch": 1, "test_acc": 10.0, "layers": LAYERS}])
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
