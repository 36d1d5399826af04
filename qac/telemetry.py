"""What a training run reports while it runs: one line per epoch, ``log.csv``, TensorBoard.

After every epoch, rank 0 prints one flushed line (loss, accuracies, learning rate, mean T,
seconds) to stderr, so a batch job's log grows by a line per epoch even with ``--no-progress``
(which only hides the progress bars); rewrites ``log.jsonl`` and ``log.csv`` (columns
:data:`CSV_COLUMNS`) atomically in the run directory; and, when asked for
(``TrainConfig.tensorboard`` or ``QAC_TENSORBOARD=1``), adds the same scalars to TensorBoard
event files in ``runs/<fingerprint>/tensorboard/`` (``pip install tensorboard``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from qac.io import atomic_write_text
from qac.trainconfig import ConfigError

__all__ = [
    "CSV_COLUMNS",
    "TENSORBOARD_ENV",
    "Telemetry",
    "csv_text",
    "epoch_line",
    "mean_timesteps",
    "tensorboard_requested",
    "check_tensorboard",
    "write_logs",
]

CSV_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "test_acc", "mean_T", "seconds")
TENSORBOARD_ENV = "QAC_TENSORBOARD"
TENSORBOARD_DIR = "tensorboard"
# TensorBoard tag of each scalar (the CSV column it comes from)
_SCALARS = {
    "train_loss": "loss/train",
    "train_acc": "accuracy/train",
    "test_acc": "accuracy/test",
    "lr": "lr",
    "mean_T": "mean_T",
    "seconds": "seconds",
}


def mean_timesteps(record: dict[str, Any]) -> float | None:
    """Mean of the per-layer T of an epoch record (``inf`` if one is infinite; None: no layer)."""
    Ts = [float(layer["T"]) for layer in record.get("layers", [])]
    return sum(Ts) / len(Ts) if Ts else None


def _row(record: dict[str, Any]) -> dict[str, Any]:
    """The CSV row of an epoch record (empty cells for values the epoch does not have)."""
    row = {**record, "mean_T": mean_timesteps(record)}
    return {k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS}


def csv_text(history: list[dict[str, Any]]) -> str:
    """``log.csv``: a header and one row per epoch record."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(_row(r) for r in history)
    return buffer.getvalue()


def write_logs(run_dir: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``log.jsonl`` and then ``log.csv`` of ``history`` atomically in ``run_dir``."""
    atomic_write_text(run_dir / "log.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    atomic_write_text(run_dir / "log.csv", csv_text(history))


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One human-readable line of an epoch record."""
    test = record.get("test_acc")
    mean_T = mean_timesteps(record)
    return (
        f"epoch {record['epoch']}/{epochs}"
        f"  loss {record['train_loss']:.4f}"
        f"  train acc {record['train_acc']:.2f}%"
        f"  test acc {'-' if test is None else f'{test:.2f}%'}"
        f"  lr {record['lr']:.4g}"
        f"  mean T {'-' if mean_T is None else f'{mean_T:.2f}'}"
        f"  {record['seconds']:.1f} s"
    )


def tensorboard_requested(enabled: bool) -> bool:
    """Whether to write TensorBoard scalars: ``enabled`` or ``QAC_TENSORBOARD`` set to 1/true."""
    return enabled or os.environ.get(TENSORBOARD_ENV, "").strip().lower() in ("1", "true", "yes")


def check_tensorboard() -> type:
    """``SummaryWriter``, or a one-line :class:`ConfigError` when tensorboard cannot be imported."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:
        raise ConfigError(
            f"TensorBoard logging is on (tensorboard: true or {TENSORBOARD_ENV}=1) but tensorboard "
            f"cannot be imported ({exc}): pip install tensorboard, or turn it off"
        ) from None
    return SummaryWriter


class Telemetry:
    """Reports the epochs of one run; inactive (reports nothing) on ranks other than 0."""

    def __init__(
        self, run_dir: Path, epochs: int, *, active: bool, tensorboard: bool, first_epoch: int
    ) -> None:
        self.run_dir, self.epochs, self.active = run_dir, epochs, active
        self.writer = None
        if active and tensorboard_requested(tensorboard):
            # purge_step drops what a killed run logged after its last saved epoch
            self.writer = check_tensorboard()(
                str(run_dir / TENSORBOARD_DIR), purge_step=first_epoch + 1
            )

    def epoch(self, history: list[dict[str, Any]]) -> None:
        """Report the last record of ``history`` (after the run's state was saved)."""
        if not self.active:
            return
        record = history[-1]
        write_logs(self.run_dir, history)
        print(epoch_line(record, self.epochs), file=sys.stderr, flush=True)
        if self.writer is not None:
            self._scalars(_row(record))

    def _scalars(self, row: dict[str, Any]) -> None:
        for column, tag in _SCALARS.items():
            if row[column] != "":
                self.writer.add_scalar(tag, float(row[column]), row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
