"""Errors of :mod:`qac.data`: every error for bad input is a one-line :class:`DatasetError`."""

from __future__ import annotations

__all__ = ["DatasetError", "DatasetNotFoundError", "DatasetOptionError", "ImageDecodeError"]


class DatasetError(ValueError):
    """A dataset source, its options or its files are unusable (one-line message says the fix).

    Base class of every error this module raises for bad user input, so callers (the workflow's
    pre-run check, the CLI) can catch them all with one ``except DatasetError``.
    """


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset's files are missing, incomplete or unreadable (message says what to do)."""


class DatasetOptionError(DatasetError, TypeError):
    """A keyword option the dataset source does not take (a ``TypeError`` like Python's own)."""


class ImageDecodeError(DatasetError):
    """An image file that cannot be read or decoded; ``path`` names it."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path
