"""Fingerprints of a user's data: a SHA-256 over their files' bytes and the settings that shape a dataset.

A changed, added, removed or renamed file, or a changed setting (size, channels, split, ...), gives a
new fingerprint; the prepared-dataset cache and the quality classifier's cache are named by it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genframe.contracts.errors import DataError
from genframe.data.progress import with_progress

#: Bumped whenever the way files become arrays changes, so no cache made the old way is reused.
FORMAT_VERSION = 2  # 2: EXIF orientation applied
_CHUNK = 1 << 20

# (path, size, mtime, ctime, inode) -> content SHA-256. In-process only: a run builds each split more
# than once (training, then evaluation), and hashing a large folder again each time would be slow.
_file_hashes: dict[tuple[str, int, int, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of one file's bytes, read in chunks."""
    try:
        status = path.stat()
        key = (str(path.resolve()), status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino)
        if key not in _file_hashes:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            _file_hashes[key] = digest.hexdigest()
        return _file_hashes[key]
    except OSError as exc:
        raise DataError(f"cannot read {path} ({exc.strerror or exc}); check that it exists and that you may "
                        f"read it") from None


def data_fingerprint(files: Sequence[tuple[str, Path]], settings: Mapping[str, Any], label: str) -> str:
    """The fingerprint of ``files`` (relative path, path), taken in sorted relative-path order, and
    ``settings``. Each file enters as its relative path and the SHA-256 of its bytes."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"format": FORMAT_VERSION, **settings}, sort_keys=True).encode("utf-8"))
    ordered = sorted(files)
    for relative, path in with_progress(ordered, len(ordered), f"{label}: hashing"):
        digest.update(b"\0" + relative.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()

