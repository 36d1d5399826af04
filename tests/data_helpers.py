"""Helpers shared by the tests of :mod:`qac.data` (tests/test_data_*.py)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def make_tree(
    base: Path,
    classes: dict[str, int],
    *,
    splits: tuple[str, ...] = ("train", "test"),
    size: tuple[int, int] = (8, 6),
    fmt: str = "png",
    seed: int = 0,
) -> dict[tuple[str, str], list[np.ndarray]]:
    """Write an ImageFolder tree of random images; return the arrays per (split, class)."""
    rng = np.random.default_rng(seed)
    arrays: dict[tuple[str, str], list[np.ndarray]] = {}
    for split in splits:
        for cls, n in classes.items():
            d = base / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i:04d}.{fmt}")
                arrays.setdefault((split, cls), []).append(arr)
    return arrays


def make_tar(src_dir: Path, out: Path, arcname: str) -> Path:
    mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
    with tarfile.open(out, mode) as tf:
        tf.add(src_dir, arcname=arcname)
    return out


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and isinstance(exc.value, ValueError), msg
    return msg
