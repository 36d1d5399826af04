"""Tests for qac.data.errors: the error hierarchy."""

from __future__ import annotations

from qac import data as D
from qac.data import (
    DatasetNotFoundError,
)


def test_error_is_file_not_found() -> None:
    assert issubclass(DatasetNotFoundError, FileNotFoundError)


def test_dataset_errors_are_value_errors() -> None:
    assert issubclass(DatasetNotFoundError, D.DatasetError)
    assert issubclass(D.DatasetError, ValueError)
    assert issubclass(D.ImageDecodeError, D.DatasetError)
    assert issubclass(D.DatasetOptionError, D.DatasetError)
