"""Fused kernels for the elementwise hot paths: the IF neuron update, the time average of an
``average`` alignment, and the QAT quantizer (forward and backward).

Each has a plain PyTorch implementation (the reference, used on every device) and, on CPUs, a
fused C++ implementation (``native.cpp``, built with :func:`torch.utils.cpp_extension.load` on
first use; building takes ~30 s and needs a C++ compiler). The build is cached in
``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``) under :func:`build_name`, a hash
of the source, torch's version, the Python ABI, the compiler flags and the CPU type, never of a
path: every checkout and process on a machine shares one build, and concurrent first uses wait
for one compiler run (a file lock) instead of building over each other.

What is guaranteed against the PyTorch reference (``QAC_KERNELS=torch``), for every dtype the
kernels take, every shape (empty and size-1 dimensions included) and memory layout, and NaN/Inf
("bitwise" means NaN at the same elements, its payload and sign aside, which PyTorch's own
vector and scalar code paths do not keep alike):

- IF neuron and time average: bitwise equal outputs; a NaN membrane potential emits NaN at every
  later step, as the reference does. (One exception, equal as values: where the reference's
  ``floor(m / v_th)`` is ``-0.0`` it emits a ``-0.0`` spike, the kernel ``+0.0``.)
- Quantizer: bitwise equal output and dQ/dx. The alpha and T gradients are sums over every
  element: both implementations form the same per-element terms and add them in float64 (each in
  its own fixed order), then round once; they are bitwise equal whenever that float64 sum is
  exact, else equal or 1 ulp apart (see :mod:`qac.quant`). The kernel's sums do not depend on
  the thread count or the CPU's vector width.

The kernels touch each value once instead of once per PyTorch operation.

Which implementation runs is chosen by :func:`set_backend` or the environment variable
``QAC_KERNELS``:

- ``auto`` (default): fused on CPU tensors when the extension builds, PyTorch otherwise (a failed
  build warns once and falls back);
- ``native``: fused on CPU tensors, and an error if the extension cannot be built;
- ``torch``: always the PyTorch reference.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import sysconfig
import threading
import warnings
from collections.abc import Iterator
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
    "build_name",
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
            try:
                _state["module"] = _build()
            except Exception as err:  # compiler missing, headers missing, ...
                _state["failed"] = f"{type(err).__name__}: {err}".splitlines()[0][:300]
                raise RuntimeError(f"qac native kernels unavailable: {_state['failed']}") from err
    return _state["module"]  # type: ignore[return-value]


# No fast-math: -fno-trapping-math only lets the compiler turn the spike's comparison into a
# branch-free select (vectorisable); -ffp-contract=off forbids fusing a*b+c into an FMA. Both
# keep every result bitwise equal to PyTorch's.
_CFLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math", "-fopenmp"]
_LDFLAGS = ["-fopenmp"]


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


def _build() -> ModuleType:
    """The extension tuned for this CPU (-march=native), or a generic one if that fails."""
    try:
        return _load_cached([*_CFLAGS, "-march=native"])
    except Exception:  # e.g. a compiler without -march=native
        return _load_cached(_CFLAGS)


def build_name(cflags: list[str]) -> str:
    """The cache entry of one build: a hash of everything the binary depends on (the source,
    torch's full version, the Python ABI, the machine, the compiler and its flags, and the CPU
    type for -march=native), and of nothing that differs between checkouts (paths)."""
    parts = [
        hashlib.sha1(_SOURCE.read_bytes()).hexdigest(),
        torch.__version__,
        str(sysconfig.get_config_var("EXT_SUFFIX")),
        platform.machine(),
        os.environ.get("CXX", "c++"),
        " ".join([*cflags, *_LDFLAGS]),
        _cpu_fingerprint() if "-march=native" in cflags else "generic",
    ]
    return "qac_native_" + hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def _load_cached(cflags: list[str]) -> ModuleType:
    """Import the cached build for these flags, building it first if there is none.

    The build happens in ``<extensions dir>/<build_name>/`` from a copy of ``native.cpp`` placed
    there, so its recorded paths are the same for every checkout; a file lock keeps concurrent
    processes from building over each other, and a ``complete`` marker lets every later process
    (any checkout) import the library directly, without the compiler or ninja.
    """
    from torch.utils.cpp_extension import LIB_EXT, get_default_build_root, load

    name = build_name(cflags)
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    directory = Path(root) / name
    library, marker = directory / f"{name}{LIB_EXT}", directory / "complete"
    if marker.exists():
        try:
            return _import_library(name, library)
        except (ImportError, OSError):  # a removed or damaged library: build it again
            marker.unlink(missing_ok=True)
    directory.mkdir(parents=True, exist_ok=True)
    with _file_lock(directory / "qac-build.lock"):
        if marker.exists():  # another process built it while this one waited
            return _import_library(name, library)
        source = directory / _SOURCE.name
        if not source.exists() or source.read_bytes() != _SOURCE.read_bytes():
            shutil.copyfile(_SOURCE, source)
        _put_ninja_on_path()
        module = load(
            name=name,
            sources=[str(source)],
            build_directory=str(directory),
            extra_cflags=cflags,
            extra_ldflags=_LDFLAGS,
            verbose=False,
        )
        _state["compiled"] = True  # this process ran the build (the tests read it)
        marker.write_text(f"{torch.__version__} {' '.join(cflags)}\n")
        return module


def _import_library(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` across processes (released if the holder dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: torch's own build lock still serialises the compiler
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
            warnings.warn(
                f"{err}; using the PyTorch kernels (QAC_KERNELS=torch silences this)", stacklevel=2
            )
            _state["warned"] = True
        return False
    return True


def standard_layout(t: torch.Tensor) -> bool:
    """Dense in the standard (row-major) or, for 4-D tensors, the channels_last layout: the
    layouts the fused kernels walk as one flat array."""
    channels_last = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    return t.is_contiguous() or channels_last
