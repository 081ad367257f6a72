"""The cache of prepared datasets: a user's files read once, kept as uint8 (N, C, H, W) images (+ labels).

An entry lives under ``cache_dir() / "datasets"`` and is named by the data's fingerprint:

- ``<fingerprint>.images.npy``: the images, streamed to disk as they are decoded (a dataset larger
  than memory never has to fit in it);
- ``<fingerprint>.labels.npy``: the class indices, when the data is labelled;
- ``<fingerprint>.json``: written last, it describes the other two and holds their checksums, so an
  entry without it is unfinished and one whose files disagree with it is damaged: rebuilt, never trusted.

Every file is written atomically. An entry smaller than :data:`IN_MEMORY_FRACTION` of the free memory
is loaded whole; a larger one is memory-mapped, so a batch reads only its own rows from disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from genframe.contracts.errors import DataError
from genframe.data.progress import say_once
from genframe.util.atomic import atomic_write, atomic_write_bytes, atomic_write_text

#: Entries whose images take less than this share of the free memory are loaded whole, else memory-mapped.
IN_MEMORY_FRACTION = 0.25


class CacheDamaged(Exception):
    """A cache entry's files disagree with its description; the message says how."""


@dataclass
class Prepared:
    """What a dataset makes of its source before caching: the images come from ``chunks()``, a fresh
    iterator of uint8 (k, C, H, W) arrays in order each time it is called (decoding is lazy)."""

    shape: tuple[int, int, int, int]
    chunks: Callable[[], Iterable[np.ndarray]]
    labels: np.ndarray | None = None
    details: dict[str, Any] = field(default_factory=dict)  # JSON-able: class names, class count, source


@dataclass
class Entry:
    """A cached dataset as loaded: ``images`` an in-memory array, or a read-only memory map."""

    images: np.ndarray
    labels: np.ndarray | None
    details: dict[str, Any]
    mapped: bool
    location: Path | None  # the images file; None when the cache could not be written


def cache_folder() -> Path:
    from genframe.util.resources import genframe_cache

    return genframe_cache() / "prepared"  # beside downloads (datasets/), not among them


def load_or_prepare(fingerprint: str, prepare: Callable[[], Prepared], label: str) -> Entry:
    """The cached entry for ``fingerprint``, or ``prepare()``'s result, cached on the way."""
    folder = cache_folder()
    with _preparing(folder, fingerprint):  # torchrun's processes: one prepares, the others then read its cache
        entry = read_entry(folder, fingerprint)
        if entry is not None:
            say_once(f"{label}: {len(entry.images)} images from the cache {entry.location}{_mapped_note(entry)}")
            return entry
        prepared = prepare()
        try:
            entry = write_entry(folder, fingerprint, prepared)
        except OSError as exc:  # an unwritable or full disk: the data can still be used, just not kept
            warnings.warn(f"genframe: could not cache the prepared dataset in {folder} ({exc.strerror or exc}); "
                          f"it will be read again next time", UserWarning, stacklevel=3)
            return _in_memory(prepared)
    say_once(f"{label}: read {len(entry.images)} images, cached in {entry.location}{_mapped_note(entry)}")
    return entry


@contextlib.contextmanager
def _preparing(folder: Path, fingerprint: str) -> Iterator[None]:
    """Hold the lock of one cache entry (released by the OS if the process dies); without a writable folder,
    no lock: each process prepares its own copy in memory."""
    import filelock

    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(folder / f".{fingerprint}.lock")
        lock.acquire()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def write_entry(folder: Path, fingerprint: str, prepared: Prepared) -> Entry:
    images_path, labels_path, description_path = _paths(folder, fingerprint)
    images_sha256 = ""

    def write_images(handle: BinaryIO) -> None:
        nonlocal images_sha256
        images_sha256 = _stream_npy(handle, prepared.shape, prepared.chunks())

    atomic_write(images_path, write_images)
    description = {
        **prepared.details, "format": 1, "fingerprint": fingerprint, "shape": list(prepared.shape),
        "images_sha256": images_sha256, "labels_sha256": None,
    }
    if prepared.labels is not None:
        labels = np.ascontiguousarray(prepared.labels, dtype=np.int64)
        buffer = io.BytesIO()
        np.save(buffer, labels)
        atomic_write_bytes(labels_path, buffer.getvalue())
        description["labels_sha256"] = hashlib.sha256(labels.data).hexdigest()
    atomic_write_text(description_path, json.dumps(description, indent=1, sort_keys=True) + "\n")
    entry = read_entry(folder, fingerprint)
    if entry is None:  # read back at once: only a disk that changes what was just written gets here
        raise DataError(f"the prepared dataset just written to {images_path} does not read back; check that "
                        f"disk, or point GENFRAME_CACHE_DIR at another")
    return entry


def read_entry(folder: Path, fingerprint: str) -> Entry | None:
    """The entry for ``fingerprint``; None when there is none, or it is damaged (with a warning)."""
    images_path, labels_path, description_path = _paths(folder, fingerprint)
    if not description_path.exists():
        return None
    try:
        description = json.loads(description_path.read_text(encoding="utf-8"))
        shape = tuple(description["shape"])
        images, mapped = _load_images(images_path, shape, description["images_sha256"])
        labels = None
        if description["labels_sha256"] is not None:
            labels = np.load(labels_path, allow_pickle=False)
            if labels.shape != (shape[0],) or labels.dtype != np.int64:
                raise CacheDamaged(f"labels of shape {labels.shape} for {shape[0]} images")
            if hashlib.sha256(labels.data).hexdigest() != description["labels_sha256"]:
                raise CacheDamaged("the labels fail their checksum")
    except (OSError, ValueError, KeyError, TypeError, CacheDamaged) as exc:
        warnings.warn(f"genframe: the prepared dataset cache {description_path} is damaged "
                      f"({' '.join(str(exc).split()) or type(exc).__name__}); reading the data again",
                      UserWarning, stacklevel=3)
        return None
    return Entry(images, labels, description, mapped, images_path)


def fits_in_memory(nbytes: int) -> bool:
    from genframe.util.resources import available_memory

    available = available_memory(torch.device("cpu"))
    return available is None or nbytes < IN_MEMORY_FRACTION * available


def _load_images(path: Path, shape: tuple[int, ...], sha256: str) -> tuple[np.ndarray, bool]:
    if fits_in_memory(int(np.prod(shape))):
        images = np.load(path, allow_pickle=False)
        _check_array(images, shape)
        # Loaded whole anyway, so checking every byte costs little beside it.
        if hashlib.sha256(images.data).hexdigest() != sha256:
            raise CacheDamaged("the images fail their checksum")
        return images, False
    images = np.load(path, mmap_mode="r", allow_pickle=False)
    _check_array(images, shape)
    # Hashing a mapped file would read it all, which mapping is there to avoid: header and size it is.
    if path.stat().st_size != images.offset + images.nbytes:
        raise CacheDamaged(f"the images file holds {path.stat().st_size} bytes, not "
                           f"{images.offset + images.nbytes}")
    return images, True


def _check_array(images: np.ndarray, shape: tuple[int, ...]) -> None:
    if images.shape != shape or images.dtype != np.uint8:
        raise CacheDamaged(f"{images.dtype} images of shape {images.shape}, not uint8 of shape {shape}")


def _stream_npy(handle: BinaryIO, shape: tuple[int, int, int, int], chunks: Iterable[np.ndarray]) -> str:
    """Write a .npy of uint8 ``shape`` from ``chunks``; returns the SHA-256 of the array's bytes."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(handle, header)
    digest, written = hashlib.sha256(), 0
    for chunk in chunks:
        chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
        if chunk.shape[1:] != shape[1:]:
            raise ValueError(f"a chunk of shape {chunk.shape} for images of shape {shape}")  # a dataset's bug
        handle.write(chunk.data)
        digest.update(chunk.data)
        written += len(chunk)
    if written != shape[0]:
        raise ValueError(f"{written} images written for {shape[0]}")  # a dataset's bug
    return digest.hexdigest()


def _in_memory(prepared: Prepared) -> Entry:
    parts = list(prepared.chunks())
    images = np.concatenate(parts) if parts else np.zeros(prepared.shape, dtype=np.uint8)
    labels = None if prepared.labels is None else np.asarray(prepared.labels, dtype=np.int64)
    return Entry(images, labels, dict(prepared.details), False, None)


def _paths(folder: Path, fingerprint: str) -> tuple[Path, Path, Path]:
    return (folder / f"{fingerprint}.images.npy", folder / f"{fingerprint}.labels.npy",
            folder / f"{fingerprint}.json")


def _mapped_note(entry: Entry) -> str:
    return " (memory-mapped: too large to hold in the free memory)" if entry.mapped else ""
