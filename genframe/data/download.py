"""Find dataset files on disk, verify their checksums, and download missing ones from mirrors.

Downloads are atomic: bytes go to a temporary file in the destination folder and are renamed
into place only after their checksum verifies, so a failure never leaves a half-written file
under the final name. Files already on disk are never overwritten, even when they are damaged:
the user is told what to delete instead.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import socket
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

from genframe.contracts.errors import DataError
from genframe.data.idx import GZIP_MAGIC
from genframe.util.atomic import atomic_write
from genframe.util.signals import stop_if_held

DATA_DIR_ENV = "GENFRAME_DATA_DIR"
OFFLINE_ENV = "GENFRAME_OFFLINE"
_CHUNK = 1 << 20

# (resolved path, size, mtime_ns) -> content sha256. In-process only: the shared dataset folder is
# read-only, so no sidecar file could be written there; re-hashing once per process is cheap.
_verified_hashes: dict[tuple[str, int, int], str] = {}


class _MirrorFailure(Exception):
    """One mirror could not provide a good copy; the message is a short reason for the error list."""


def resolve_data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$GENFRAME_DATA_DIR``, else the default cache.

    The default is ``~/.cache/genframe/datasets``; datasets live in sub-folders, e.g. ``<root>/mnist/``.
    """
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "genframe" / "datasets"


def offline_requested() -> bool:
    """Whether ``$GENFRAME_OFFLINE`` asks that nothing be downloaded."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def sha256_of_content(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of the file's content, decompressed first if it is gzip (by magic bytes)."""
    path = Path(path)
    with path.open("rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            return _hash_stream(raw)
        try:
            with gzip.GzipFile(fileobj=raw) as stream:
                return _hash_stream(stream)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"Data file {path} is a damaged gzip file ({str(exc) or type(exc).__name__}); "
                f"delete it and re-run to download it again."
            ) from exc


def _hash_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _cache_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def _cached_sha256(path: Path) -> str:
    """Content hash of ``path``, reused while its size and mtime are unchanged."""
    key = _cache_key(path)
    if key not in _verified_hashes:
        _verified_hashes[key] = sha256_of_content(path)
    return _verified_hashes[key]


def _candidates(folder: Path, name: str) -> list[Path]:
    """Where a file may already be: under its own name, or decompressed (``.gz`` dropped)."""
    paths = [folder / name]
    if name.endswith(".gz"):
        paths.append(folder / name[: -len(".gz")])
    return paths


def ensure_dataset_files(
    subdir: str,
    files: dict[str, str],
    mirrors: list[str],
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    timeout: float = 30,
) -> dict[str, Path]:
    """Return ``{name: path}`` for each verified file in ``files`` (name -> sha256 of decompressed content).

    Files are looked up in ``<root>/<subdir>/`` (as ``name`` or without ``.gz``); missing ones are
    downloaded from ``mirrors`` in order unless ``download`` is false or ``$GENFRAME_OFFLINE`` is set.
    """
    folder = resolve_data_root(root) / subdir
    allow_download = download and not offline_requested()
    found: dict[str, Path] = {}
    for name, expected in files.items():
        existing = next((p for p in _candidates(folder, name) if p.is_file()), None)
        if existing is not None:
            _check_existing(existing, expected.lower())
            found[name] = existing
        elif not allow_download:
            raise DataError(_missing_message(folder, subdir, name, download_tried=None))
        else:
            found[name] = _download(folder, subdir, name, expected.lower(), mirrors, timeout)
    return found


def _check_existing(path: Path, expected: str) -> None:
    actual = _cached_sha256(path)
    if actual != expected:
        raise DataError(
            f"Data file {path} has the wrong checksum (sha256 of its content {actual}, expected {expected}); "
            f"it is damaged or a different file: delete it and re-run to download it again."
        )


def _missing_message(folder: Path, subdir: str, name: str, download_tried: list[str] | None) -> str:
    fix = (
        f"fix: set {DATA_DIR_ENV} (or data.root) to a folder containing {subdir}/{name}, "
        f"or put the file in {folder}"
    )
    if download_tried is None:
        why = "downloads are disabled (download=False or GENFRAME_OFFLINE set)"
        return f"Data file {folder / name} is missing and {why}; {fix}, or allow downloads while online."
    tried = "; ".join(download_tried) if download_tried else "no mirrors configured"
    return f"Could not download {name} into {folder}: tried {tried}; {fix}, or retry while online."


def _download(
    folder: Path, subdir: str, name: str, expected: str, mirrors: list[str], timeout: float
) -> Path:
    """Fetch ``name`` from the first mirror that serves bytes with the expected checksum."""
    _make_writable_folder(folder)
    target = folder / name
    tried: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            _fetch_verified(url, target, expected, timeout)
        except _MirrorFailure as failure:
            tried.append(f"{url} ({failure})")
            continue
        except OSError as exc:
            # Raised by our own writes (disk full, folder removed), not by the network.
            raise DataError(
                f"Could not write the download of {name} into {folder} ({exc.strerror or exc}); "
                f"free some space or set {DATA_DIR_ENV} (or data.root) to another writable folder."
            ) from exc
        return target
    raise DataError(_missing_message(folder, subdir, name, download_tried=tried))


def _make_writable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Probe with a real file: permission bits alone lie for root and read-only mounts.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise DataError(
            f"Cannot download into {folder}: it is not a writable folder ({exc.strerror or exc}); "
            f"set {DATA_DIR_ENV} (or data.root) to a writable folder, or to one that already holds the files."
        ) from exc


def _fetch_verified(url: str, target: Path, expected: str, timeout: float) -> None:
    """Download ``url`` to a temp file beside ``target`` and rename it into place once verified
    (``atomic_write``: a failure never leaves partial bytes behind)."""
    verified: list[str] = []

    def verify(tmp: Path) -> None:
        try:
            actual = sha256_of_content(tmp)
        except DataError as exc:
            raise _MirrorFailure("served a damaged gzip file") from exc
        if actual != expected:
            raise _MirrorFailure(f"checksum mismatch: sha256 {actual[:12]}..., expected {expected[:12]}...")
        verified.append(actual)

    atomic_write(target, lambda out: _copy_url(url, out, timeout), check=verify)
    _verified_hashes[_cache_key(target)] = verified[0]  # the caller will read it next: don't hash twice


def _copy_url(url: str, out: BinaryIO, timeout: float) -> None:
    """Stream ``url`` into ``out``; network and HTTP problems become :class:`_MirrorFailure`."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - mirrors are configured URLs
    except urllib.error.HTTPError as exc:
        raise _MirrorFailure(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise _MirrorFailure(_network_reason(exc)) from exc
    with response:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (http.client.HTTPException, OSError) as exc:
                raise _MirrorFailure(_network_reason(exc)) from exc
            if not chunk:
                break
            # A local write error (disk full) is not the mirror's fault: it propagates as OSError
            # and _download reports it instead of trying the next mirror.
            out.write(chunk)
            stop_if_held()  # a download is the one long piece of a run's start-up: a Ctrl-C stops it here


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        if isinstance(exc.reason, str):
            return exc.reason
        exc = exc.reason  # unwrap e.g. ConnectionRefusedError for a shorter message
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    text = str(exc).replace("\n", " ").strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
