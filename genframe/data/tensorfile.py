"""The ``tensorfile`` dataset: the user's images as one array in a ``.pt``, ``.npy`` or ``.npz`` file.

- ``.pt``: a tensor, or a dict with ``"images"`` and optional ``"labels"`` (read with
  ``torch.load(weights_only=True)``, which runs no code from the file);
- ``.npy``: an array (memory-mapped while it is read, so it never has to fit in memory twice);
- ``.npz``: arrays ``"images"`` (or ``"x"``) and optional ``"labels"`` (or ``"y"``).

Images are N x C x H x W (C 1 or 3) or N x H x W; uint8 0..255, or float in [0, 1] or in [-1, 1], told
apart by the values' range (data all in [0, 1] is read as [0, 1]). ``data.size`` and ``data.channels``
reshape them as for ``imagefolder``; the test split is the same fixed hold-out of ``data.test_fraction``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genframe.contracts.errors import DataError
from genframe.data.datacache import Prepared, load_or_prepare
from genframe.data.fingerprint import data_fingerprint
from genframe.data.holdout import check_split, holdout_indices
from genframe.data.imageops import convert_channels, resize_and_crop
from genframe.data.prepared import PreparedImages

SUFFIXES = (".pt", ".npy", ".npz")
_CHUNK = 1024  # images converted at a time: bounds the float copies a conversion makes
_ACCEPTED_SHAPES = "N x C x H x W with C 1 or 3, or N x H x W"


class TensorFile(PreparedImages):
    """Images (and labels) from one .pt, .npy or .npz file; see the module's description."""

    name: ClassVar[str] = "tensorfile"

    def __init__(
        self,
        split: str = "train",
        root: str | os.PathLike[str] | None = None,  # data.root: where genframe downloads to; not read here
        download: bool = True,
        path: str | os.PathLike[str] | None = None,
        size: int | None = None,
        channels: int | None = None,
        test_fraction: float = 0.1,
    ) -> None:
        check_split(self.name, split)
        file = _data_file(path)
        source = os.fspath(path)
        settings = {"dataset": self.name, "split": split, "size": size, "channels": channels,
                    "test_fraction": test_fraction}
        label = f"tensorfile {split} split of {source}"
        fingerprint = data_fingerprint([(file.name, file)], settings, label)
        entry = load_or_prepare(
            fingerprint, lambda: _prepare(file, source, split, size, channels, test_fraction), label
        )
        super().__init__(split, entry, fingerprint)


def _data_file(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        raise DataError("data.path is not set; dataset 'tensorfile' reads a .pt, .npy or .npz file of images: "
                        "set data.path=/path/to/images.npy")
    file = Path(path).expanduser()
    if not file.exists():
        raise DataError(f"data.path {os.fspath(path)} does not exist; set data.path to a .pt, .npy or .npz file "
                        f"of images")
    if file.is_dir():
        raise DataError(f"data.path {os.fspath(path)} is a folder; tensorfile reads one .pt, .npy or .npz file "
                        f"(for a folder of images use data.name=imagefolder)")
    if file.suffix.lower() not in SUFFIXES:
        raise DataError(f"data.path {os.fspath(path)} has the suffix {file.suffix or '(none)'!r}, which tensorfile "
                        f"does not read; save the images as .pt (torch.save), .npy (numpy.save) or .npz "
                        f"(numpy.savez)")
    return file


def _prepare(file: Path, source: str, split: str, size: int | None, channels: int | None,
             test_fraction: float) -> Prepared:
    what = f"data.path {source}"  # how messages name the file
    images, labels = read_arrays(file, what)
    images = as_nchw(images, what)
    scale = value_scale(images, what)
    num_classes = None if labels is None else check_labels(labels, len(images), what)
    # The hold-out is over the whole file, so it is ranked by row number: the same rows on every machine.
    rows = holdout_indices([str(i) for i in range(len(images))], split, test_fraction, what)
    channels = channels or images.shape[1]
    height, width = (size, size) if size is not None else images.shape[2:]

    def chunks():
        for start in range(0, len(rows), _CHUNK):
            block = torch.from_numpy(to_uint8(images[rows[start : start + _CHUNK]], scale))
            block = convert_channels(block, channels)
            if size is not None:
                block = resize_and_crop(block, size)
            yield block.numpy()

    details = {"classes": None, "num_classes": num_classes, "source": str(file.resolve())}
    selected_labels = None if labels is None else np.asarray(labels)[rows].astype(np.int64)
    return Prepared((len(rows), channels, height, width), chunks, selected_labels, details)


def read_arrays(file: Path, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(images, labels or None) as numpy arrays, as the file holds them."""
    suffix = file.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(file, mmap_mode="r", allow_pickle=False), None
        if suffix == ".npz":
            with np.load(file, allow_pickle=False) as arrays:
                return _pick(dict(arrays), ("images", "x"), ("labels", "y"), source)
        content = torch.load(file, map_location="cpu", weights_only=True)
    except DataError:
        raise
    except Exception as exc:  # numpy and torch raise many types for a file they cannot parse
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        how = ("torch.load(weights_only=True); save a tensor, or a dict of tensors, with torch.save"
               if suffix == ".pt" else "numpy without pickle; save plain numeric arrays with numpy.save(z)")
        raise DataError(f"{source} cannot be read by {how} ({reason})") from None
    if isinstance(content, dict):
        return _pick(content, ("images",), ("labels",), source)
    if not isinstance(content, torch.Tensor):
        raise DataError(f"{source} holds a {type(content).__name__}; save a tensor of images, or a dict "
                        f"with 'images' and optional 'labels' tensors")
    return _tensor_to_numpy(content, source, "images"), None


def _pick(content: dict[str, Any], image_keys: tuple[str, ...], label_keys: tuple[str, ...],
          source: str) -> tuple[np.ndarray, np.ndarray | None]:
    image_key = next((key for key in image_keys if key in content), None)
    if image_key is None:
        found = ", ".join(repr(key) for key in content) or "nothing"
        raise DataError(f"{source} holds {found} but no {' or '.join(map(repr, image_keys))}; "
                        f"store the images under {image_keys[0]!r} (and any labels under {label_keys[0]!r})")
    label_key = next((key for key in label_keys if key in content), None)
    images = _tensor_to_numpy(content[image_key], source, image_key)
    labels = None if label_key is None else _tensor_to_numpy(content[label_key], source, label_key)
    return images, labels


def _tensor_to_numpy(value: Any, source: str, key: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if not isinstance(value, torch.Tensor):
        raise DataError(f"{source}: {key!r} is a {type(value).__name__}, not a tensor or array")
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:  # numpy has no bfloat16
        value = value.float()
    return value.numpy()


def as_nchw(images: np.ndarray, source: str) -> np.ndarray:
    """N x C x H x W, with N x H x W given a channel axis (a view: nothing is copied)."""
    if images.ndim == 3 and min(images.shape) > 0:
        return images[:, None]
    if images.ndim == 4 and images.shape[1] in (1, 3) and min(images.shape) > 0:
        return images
    shape = " x ".join(map(str, images.shape)) or "a scalar"
    hint = ""
    if images.ndim == 4 and images.shape[-1] in (1, 3):
        hint = " (channels last? transpose the array with .transpose(0, 3, 1, 2))"
    raise DataError(f"{source} holds images of shape {shape}; accepted shapes: {_ACCEPTED_SHAPES}{hint}")


def value_scale(images: np.ndarray, source: str) -> str:
    """How values map to 0..255: "uint8", "unit" ([0, 1]) or "signed" ([-1, 1]); read in chunks so a
    memory-mapped file is never loaded whole."""
    kind = images.dtype.kind
    if kind not in "uif":
        raise DataError(f"{source} holds {images.dtype} images; expected uint8 0..255, or float in "
                        f"[0, 1] or in [-1, 1]")
    low, high = np.inf, -np.inf
    for start in range(0, len(images), _CHUNK):
        block = np.asarray(images[start : start + _CHUNK])
        if kind == "f" and not np.isfinite(block).all():
            raise DataError(f"{source} holds NaN or infinite values; expected float images in [0, 1] "
                            f"or in [-1, 1]")
        low, high = min(low, block.min()), max(high, block.max())
    if kind in "ui":
        if low < 0 or high > 255:
            raise DataError(f"{source} holds {images.dtype} images ranging from {low} to {high}; "
                            f"expected 0..255 (or float in [0, 1] or in [-1, 1])")
        if high <= 1:  # 0/1 masks read as 0..255 would be black: say so rather than train on nothing
            raise DataError(f"{source} holds {images.dtype} images whose values are all 0 or 1, read as "
                            f"0..255 they are black; multiply them by 255, or store them as float in [0, 1]")
        return "uint8"
    if low >= 0 and high <= 1:
        return "unit"
    if low >= -1 and high <= 1:
        return "signed"
    raise DataError(f"{source} holds float images ranging from {float(low):g} to {float(high):g}; "
                    f"expected values in [0, 1] or in [-1, 1] (or uint8 0..255): rescale them")


def to_uint8(block: np.ndarray, scale: str) -> np.ndarray:
    if scale == "uint8":
        return np.ascontiguousarray(block, dtype=np.uint8)
    values = np.asarray(block, dtype=np.float32)
    values = values * 255 if scale == "unit" else (values + 1) * 127.5
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def check_labels(labels: np.ndarray, count: int, source: str) -> int:
    """The class count, 1 + the largest label, after checking the labels fit the images."""
    if labels.ndim != 1:
        raise DataError(f"{source} holds labels of shape {labels.shape}; expected one class index per "
                        f"image, shape ({count},) (one-hot labels: use labels.argmax(1))")
    if len(labels) != count:
        raise DataError(f"{source} holds {len(labels)} labels for {count} images; give exactly one "
                        f"label per image")
    if labels.dtype.kind not in "ui":
        raise DataError(f"{source} holds {labels.dtype} labels; expected integer class indices 0..K-1")
    if count and int(labels.min()) < 0:
        raise DataError(f"{source} holds a negative label ({int(labels.min())}); expected class "
                        f"indices 0..K-1")
    return int(labels.max()) + 1
