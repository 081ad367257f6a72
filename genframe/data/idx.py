"""Read IDX files (the MNIST container format), gzip-compressed or raw, into numpy arrays.

Every problem with a file's contents is reported as a one-line :class:`DataError` that names the
file, says what was wrong and what was expected, and how to fix it.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from genframe.contracts.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code (third magic byte) -> element dtype; the format stores everything big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_FIX = "delete it and re-run to download it again"


def is_gzip(data: bytes) -> bool:
    """Whether ``data`` starts with the gzip magic bytes (the suffix alone is not trusted)."""
    return data[:2] == GZIP_MAGIC


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read the IDX file at ``path`` (gzip or raw, detected by content) into a read-only numpy array."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(
            f"Cannot read IDX file {path} ({exc.strerror or exc}); expected a readable file; check the path."
        ) from exc
    return read_idx_bytes(data, str(path))


def read_idx_bytes(data: bytes, name: str) -> np.ndarray:
    """Parse IDX content ``data`` (gzip or raw); ``name`` is used only in error messages."""
    if is_gzip(data):
        data = _gunzip(data, name)
    return _parse_idx(data, name)


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        # BadGzipFile is an OSError; EOFError means the compressed stream was cut short.
        reason = str(exc).strip() or type(exc).__name__
        raise DataError(
            f"IDX file {name} is a damaged gzip file ({reason}); expected a complete gzip stream; {_FIX}."
        ) from exc


def _parse_idx(data: bytes, name: str) -> np.ndarray:
    if len(data) < 4:
        raise DataError(
            f"IDX file {name} is too short ({len(data)} bytes); expected at least a 4-byte IDX header; "
            f"{_FIX}."
        )
    if data[0] != 0 or data[1] != 0:
        raise DataError(
            f"IDX file {name} has a bad magic number 0x{data[:4].hex()}; expected one starting with 0x0000 "
            f"(e.g. 0x00000803 for images); it is not an IDX file or is damaged; {_FIX}."
        )
    type_code, ndim = data[2], data[3]
    dtype = _IDX_DTYPES.get(type_code)
    if dtype is None:
        known = ", ".join(f"0x{c:02x}" for c in _IDX_DTYPES)
        raise DataError(
            f"IDX file {name} has unknown data type code 0x{type_code:02x}; expected one of {known}; {_FIX}."
        )
    if ndim == 0:
        raise DataError(f"IDX file {name} declares 0 dimensions; expected at least 1; {_FIX}.")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"IDX file {name} is truncated inside its header ({len(data)} bytes); "
            f"expected {header_len} header bytes for {ndim} dimension(s); {_FIX}."
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header_len + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        problem = "is truncated" if len(data) < expected else "has trailing bytes"
        raise DataError(
            f"IDX file {name} {problem}: {len(data)} bytes; expected {expected} bytes for shape "
            f"{'x'.join(map(str, shape))}; {_FIX}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    # Return native byte order so torch.from_numpy accepts multi-byte types; uint8 is already native.
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))
