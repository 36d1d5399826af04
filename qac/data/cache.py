"""On-disk caches of :mod:`qac.data`: atomic archive extraction and decoded-split tensors.

Cache (``cache_dir`` argument, else ``$QAC_CACHE_DIR``, else ``<root>/.cache``)::

    <cache>/extracted/<archive-stem>-<key>/   complete extraction of an archive; contains a
                                              ``.qac-complete`` marker.  key = sha256 of
                                              (resolved path, size, mtime_ns)[:16]
    <cache>/extracted/.tmp-*                  in-progress extraction (never trusted; renamed into
                                              place when complete, removed on error)
    <cache>/tensors/tar-<stem>-<split>-<key>.pt      decoded split of an archive (same key)
    <cache>/tensors/folder-<name>-<split>-<key>.pt   decoded split of a folder; key = sha256 of the
                                                     file list (relative path, size, mtime_ns)

``.pt`` files hold ``{"version", "images" uint8 [N,3,H,W], "labels" int64 [N], "classes"}``, are
written to a temp file and ``os.replace``d, and are loaded memory-mapped (copy-on-write, so
in-place edits of ``images`` never reach the file).  Unreadable cache files are rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

import torch

from qac.data.errors import DatasetNotFoundError
from qac.io import atomic_path

__all__ = ["CACHE_VERSION", "default_cache_dir"]

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_COMPLETE_MARKER = ".qac-complete"


def default_cache_dir(root: str | Path = "data") -> Path:
    """Cache directory used when ``cache_dir`` is None: ``$QAC_CACHE_DIR`` or ``<root>/.cache``."""
    env = os.environ.get("QAC_CACHE_DIR")
    return Path(env).expanduser() if env else Path(root).expanduser() / ".cache"


# --------------------------------------------------------------------------- decoded-split tensors


def _tensor_cache_file(cache_dir: Path, kind: str, name: str, split: str, key: str) -> Path:
    """``<cache>/tensors/<kind>-<name>-<split>-<key>.pt`` (``kind`` is ``tar`` or ``folder``)."""
    return cache_dir / "tensors" / f"{kind}-{name}-{split}-{key}.pt"


def _folder_key(tree: Path, split: str, classes: list[str], paths: Iterable[str]) -> str:
    """Key of a folder's decoded split: sha256 of (version, tree, split, classes, and every file's
    path relative to ``tree``, size and mtime_ns), first 16 hex digits."""
    h = hashlib.sha256(f"{CACHE_VERSION}|{tree.resolve()}|{split}|{classes}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{os.path.relpath(p, tree)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _atomic_torch_save(obj: object, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _read_tensor_cache(path: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]] | None:
    """Load a decoded-split cache file, or None when absent/invalid (invalid files are removed)."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        images, labels, classes = obj["images"], obj["labels"], list(obj["classes"])
        ok = (
            obj.get("version") == CACHE_VERSION
            and images.dtype == torch.uint8
            and images.dim() == 4
            and labels.shape == (images.shape[0],)
        )
        if not ok:
            raise ValueError("unexpected content")
    except Exception as exc:  # corrupt, truncated or from another version: rebuild
        log.warning("ignoring unreadable cache file %s (%s); rebuilding", path, exc)
        path.unlink(missing_ok=True)
        return None
    return images, labels.to(torch.int64), classes


def _write_tensor_cache(
    path: Path, images: torch.Tensor, labels: torch.Tensor, classes: list[str]
) -> None:
    """Write a decoded split atomically, in the format :func:`_read_tensor_cache` reads."""
    _atomic_torch_save(
        {"version": CACHE_VERSION, "images": images, "labels": labels, "classes": classes}, path
    )


# --------------------------------------------------------------------------- archives


def _archive_key(archive: Path) -> str:
    st = archive.stat()
    ident = f"{archive.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _archive_stem(archive: Path) -> str:
    name = archive.name
    for ext in (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return archive.stem


def _extract_tar(archive: Path, dest: Path) -> None:
    """Extract regular files and directories of ``archive`` into ``dest`` (links etc. skipped).

    Member names that are absolute or contain ``..`` are rejected, and no links are created, so
    nothing can be written outside ``dest``.
    """
    with tarfile.open(archive, "r:*") as tf:
        for m in tf:
            parts = Path(m.name).parts
            if m.name.startswith(("/", "\\")) or ".." in parts:
                raise tarfile.TarError(f"unsafe member name {m.name!r}")
            target = dest.joinpath(*parts) if parts else dest
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
            else:
                log.warning("skipping non-regular member %s in %s", m.name, archive)


def _cached_extraction(archive: Path, cache_dir: Path) -> Path:
    """Extract ``archive`` once into ``cache_dir/extracted`` (atomically) and return the folder."""
    key = _archive_key(archive)
    base = cache_dir / "extracted"
    final = base / f"{_archive_stem(archive)}-{key}"
    if (final / _COMPLETE_MARKER).is_file():
        return final
    if final.exists():  # not produced by us (rename is atomic): never trust it
        log.warning("removing incomplete extraction %s", final)
        shutil.rmtree(final, ignore_errors=True)
    base.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(base)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=base))
    t0 = time.perf_counter()
    try:
        _extract_tar(archive, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        (tmp / _COMPLETE_MARKER).write_text(
            json.dumps({"archive": str(archive.resolve()), "key": key, "version": CACHE_VERSION})
        )
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / _COMPLETE_MARKER).is_file():  # not a concurrent winner: real error
                raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise DatasetNotFoundError(
            f"cannot extract archive {archive}: {exc.__class__.__name__}: {exc} "
            "(is it a complete .tar/.tar.gz file?)"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %s in %.1fs", archive, time.perf_counter() - t0)
    return final


def _remove_stale_tmp(base: Path, max_age_s: float = 24 * 3600) -> None:
    """Best-effort removal of temp extraction folders left by crashed runs (older than a day)."""
    now = time.time()
    for e in os.scandir(base):
        if e.name.startswith(".tmp-") and e.is_dir():
            try:
                if now - e.stat().st_mtime > max_age_s:
                    shutil.rmtree(e.path, ignore_errors=True)
            except OSError:
                pass
