"""The native kernels' build cache: one build per machine, shared by every checkout and process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import qac
from qac import kernels

_LOAD = (
    "import json, qac, qac.kernels as k; m = k.native_module(); "
    "print(json.dumps({'qac': qac.__file__, 'so': m.__file__, "
    "'compiled': bool(k._state.get('compiled'))}))"
)


def _checkout(root: Path) -> Path:
    """A copy of the ``qac`` package, as a second clone of the repository would have it."""
    shutil.copytree(
        Path(qac.__file__).parent, root / "qac", ignore=shutil.ignore_patterns("__pycache__")
    )
    return root


def _start(checkout: Path, extensions: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "TORCH_EXTENSIONS_DIR": str(extensions),
        "QAC_KERNELS": "native",
    }
    return subprocess.Popen(
        [sys.executable, "-c", _LOAD], cwd=checkout, env=env, stdout=subprocess.PIPE, text=True
    )


def _result(proc: subprocess.Popen, checkout: Path) -> dict:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert Path(result["qac"]).is_relative_to(checkout)  # really imported from that checkout
    return result


def test_build_name_does_not_depend_on_the_checkout(tmp_path, monkeypatch):
    flags = [*kernels._CFLAGS, "-march=native"]
    here = kernels.build_name(flags)
    copy = _checkout(tmp_path / "other") / "qac" / "kernels" / "native.cpp"
    monkeypatch.setattr(kernels, "_SOURCE", copy)
    assert kernels.build_name(flags) == here
    assert kernels.build_name(kernels._CFLAGS) != here  # other flags, other build
    copy.write_text(copy.read_text() + "\n// edited\n")
    assert kernels.build_name(flags) != here  # an edited source builds anew


@pytest.mark.slow
def test_checkouts_and_processes_share_one_build(tmp_path):
    """Two checkouts start at once on an empty cache: one compiles, the other waits for it;
    later loads from either checkout import that build without compiling."""
    a, b = _checkout(tmp_path / "a"), _checkout(tmp_path / "b")
    extensions = tmp_path / "extensions"
    first = [_start(a, extensions), _start(b, extensions)]
    results = [_result(first[0], a), _result(first[1], b)]
    assert sorted(r["compiled"] for r in results) == [False, True]
    library = Path(results[0]["so"])
    assert results[1]["so"] == str(library) and library.is_relative_to(extensions)
    built = library.stat().st_mtime_ns
    for checkout in (b, a, b):
        again = _result(_start(checkout, extensions), checkout)
        assert not again["compiled"] and again["so"] == str(library)
    assert library.stat().st_mtime_ns == built
