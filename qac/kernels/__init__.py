"""Fused kernels for the elementwise hot paths: the IF neuron update, the time average of an
``average`` alignment, and the QAT quantizer (forward and backward).

Each has a plain PyTorch implementation (the reference, used on every device) and, on CPUs, a
fused C++ implementation (``native.cpp``, built with :func:`torch.utils.cpp_extension.load` on
first use and cached in ``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``; building
takes ~30 s once per machine and needs a C++ compiler). The fused kernels compute exactly the
same floating-point operations in the same order, so results are bitwise identical; they only
touch each value once instead of once per PyTorch operation.

Which implementation runs is chosen by :func:`set_backend` or the environment variable
``QAC_KERNELS``:

- ``auto`` (default): fused on CPU tensors when the extension builds, PyTorch otherwise (a failed
  build warns once and falls back);
- ``native``: fused on CPU tensors, and an error if the extension cannot be built;
- ``torch``: always the PyTorch reference.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = [
    "BACKENDS",
    "set_backend",
    "get_backend",
    "native_module",
    "use_native",
    "standard_layout",
]

BACKENDS = ("auto", "native", "torch")
_SOURCE = Path(__file__).with_name("native.cpp")
_lock = threading.Lock()
_state: dict[str, object] = {"backend": None, "module": None, "failed": None}


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown kernel backend {name!r}: expected one of {BACKENDS}")
    return name


def set_backend(name: str) -> None:
    """Choose ``auto``, ``native`` or ``torch`` kernels for this process."""
    _state["backend"] = _check(name)


def get_backend() -> str:
    if _state["backend"] is None:
        env = os.environ.get("QAC_KERNELS", "auto").strip().lower() or "auto"
        try:
            _state["backend"] = _check(env)
        except ValueError as err:
            raise ValueError(f"QAC_KERNELS: {err}") from None
    return str(_state["backend"])


def native_module() -> ModuleType:
    """The compiled extension (built on first call; raises if it cannot be built)."""
    if _state["module"] is not None:
        return _state["module"]  # type: ignore[return-value]
    if _state["failed"] is not None:
        raise RuntimeError(f"qac native kernels unavailable: {_state['failed']}")
    with _lock:
        if _state["module"] is None:
            from torch.utils.cpp_extension import load

            _put_ninja_on_path()
            try:
                _state["module"] = _build(load)
            except Exception as err:  # compiler missing, headers missing, ...
                _state["failed"] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                raise RuntimeError(f"qac native kernels unavailable: {_state['failed']}") from err
    return _state["module"]  # type: ignore[return-value]


# No fast-math: -fno-trapping-math only lets the compiler turn the spike's comparison into a
# branch-free select (vectorisable); -ffp-contract=off forbids fusing a*b+c into an FMA. Both
# keep every result bitwise equal to PyTorch's.
_CFLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp"]


def _cpu_fingerprint() -> str:
    """Identifies the instruction set the extension is built for (it uses -march=native)."""
    text = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                text = line
                break
    except OSError:
        pass
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _build(load):  # type: ignore[no-untyped-def]
    """Build (or load the cached build of) native.cpp for this CPU, torch and source."""
    # one build per source version, torch version and machine type: several checkouts (or a
    # running job and an edited source) never rebuild over each other
    source_hash = hashlib.sha1(_SOURCE.read_bytes()).hexdigest()[:8]
    base = f"qac_native_{source_hash}_{platform.machine()}_torch{torch.__version__.split('+')[0]}"
    base = base.replace(".", "_").replace("-", "_")
    try:  # tuned for this CPU (vector width, rounding instructions); cached per CPU type
        return load(
            name=f"{base}_{_cpu_fingerprint()}",
            sources=[str(_SOURCE)],
            extra_cflags=[*_CFLAGS, "-march=native"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception:  # e.g. a compiler without -march=native
        return load(
            name=f"{base}_generic",
            sources=[str(_SOURCE)],
            extra_cflags=_CFLAGS,
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )


def _put_ninja_on_path() -> None:
    """torch's extension builder runs ``ninja`` from PATH; use the pip package's if needed."""
    if shutil.which("ninja"):
        return
    try:
        import ninja  # the PyPI package ships the binary
    except ImportError:
        return
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def use_native(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernels handle these tensors (all on the CPU, backend allowing)."""
    backend = get_backend()
    if backend == "torch" or any(t.device.type != "cpu" for t in tensors):
        return False
    if backend == "native":
        native_module()
        return True
    try:
        native_module()
    except RuntimeError as err:
        if not _state.get("warned"):
            warnings.warn(f"{err}; using the PyTorch kernels (QAC_KERNELS=torch silences this)",
                          stacklevel=2)
            _state["warned"] = True
        return False
    return True


def standard_layout(t: torch.Tensor) -> bool:
    """Dense in the standard (row-major) or, for 4-D tensors, the channels_last layout: the
    layouts the fused kernels walk as one flat array."""
    channels_last = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    return t.is_contiguous() or channels_last
