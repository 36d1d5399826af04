"""Decoding image files of :mod:`qac.data` to uint8 RGB tensors.

Images are decoded with ``torchvision.io.decode_image`` (pixel-identical to PIL on the CIFAR-10
JPEGs, ~2.5x faster), falling back to PIL.  A file neither can read raises
:class:`~qac.data.ImageDecodeError` naming it.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from qac.data.errors import DatasetError, ImageDecodeError

_SKIP_HINT = "remove the file, or pass skip_bad_images=True (data_options) to skip such files"


def _pil_decode(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGB"))
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _decode_failure(
    path: str | Path, data: bytes | None, exc: BaseException, hint: str = _SKIP_HINT
) -> ImageDecodeError:
    """One-line :class:`ImageDecodeError` naming ``path`` and why it could not be decoded."""
    if data is not None and not data:
        reason = "empty file, 0 bytes"
    elif isinstance(exc, Image.UnidentifiedImageError):
        reason = "not an image in a known format"
    else:
        text = " ".join(str(exc).split())
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    verb = "read" if data is None else "decode"
    return ImageDecodeError(f"cannot {verb} image {path} ({reason}): {hint}", str(path))


def _open_rgb(path: str | Path) -> Image.Image:
    """PIL RGB image of ``path``; :class:`ImageDecodeError` naming it when unreadable."""
    data: bytes | None = None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise _decode_failure(path, data, exc, "remove or replace the file") from exc


def _decode_one(path: str | Path) -> torch.Tensor:
    """Decode one image file to uint8 RGB ``[3,H,W]``.

    Uses ``torchvision.io.decode_image`` (libjpeg-turbo/libpng; ~2.5x faster than PIL here and
    pixel-identical to PIL on the CIFAR-10 JPEGs) when available, PIL otherwise or on failure.
    Raises :class:`ImageDecodeError` naming ``path`` when neither can read it (truncated or empty
    file, unknown format, unreadable file).
    """
    data: bytes | None = None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            from torchvision.io import ImageReadMode, decode_image
        except ImportError:  # torchvision.io decoders are deprecated since 0.29
            return _pil_decode(data)
        try:
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return decode_image(buf, mode=ImageReadMode.RGB)
        except (RuntimeError, ValueError):
            return _pil_decode(data)
    except MemoryError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise _decode_failure(path, data, exc) from exc


def _decode_files(paths: Sequence[str | Path], skipped: list[int] | None = None) -> torch.Tensor:
    """Decode equally sized image files into one uint8 ``[N,3,H,W]`` tensor.

    An undecodable file raises :class:`ImageDecodeError` naming it; when ``skipped`` is a list,
    such files are left out instead and their indices (into ``paths``) appended to it.
    """
    if not paths:
        raise DatasetError("no image files to decode")
    out: torch.Tensor | None = None
    first = ""
    n = 0
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*decoding and encoding capabilities of TorchVision are deprecated"
        )
        for i, path in enumerate(paths):
            try:
                img = _decode_one(path)
            except ImageDecodeError:
                if skipped is None:
                    raise
                skipped.append(i)
                continue
            if out is None:
                out, first = torch.empty((len(paths), *img.shape), dtype=torch.uint8), str(path)
            elif img.shape != out.shape[1:]:
                raise DatasetError(
                    f"image {path} has shape {tuple(img.shape)} but {first} has "
                    f"{tuple(out.shape[1:])}; in-memory sources need equally sized images"
                )
            out[n] = img
            n += 1
    if out is None:
        raise DatasetError(
            f"none of the {len(paths)} image files could be decoded (first: {paths[0]})"
        )
    return out if n == len(paths) else out[:n].clone()
