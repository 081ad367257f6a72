"""The ``imagefolder`` dataset: a folder of the user's own images (png, jpg/jpeg, bmp, gif, webp).

``data.path`` (ROOT) may be laid out as

- ``ROOT/*.png``: unlabelled images (as soon as any image sits directly in ROOT, all are unlabelled);
- ``ROOT/<class>/*.png``: labelled; the sorted sub-folder names are the classes 0..K-1 (folders holding
  no image are no class);
- ``ROOT/train/...`` and ``ROOT/test/...``: the data's own splits, each laid out as above. Without them
  the test split is a fixed hold-out of ``data.test_fraction`` (see :mod:`genframe.data.holdout`).

Images are converted to ``data.channels`` (default: 1 if every image is grey, else 3) and, with
``data.size``, resized so the shorter side is ``size`` and centre-cropped to a square; without it they
must all have one size. A gif gives its first frame. The result is cached (:mod:`genframe.data.datacache`),
so only the first run, or the first after a file changed, decodes any image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image, ImageOps

from genframe.contracts.errors import DataError
from genframe.data.datacache import Prepared, load_or_prepare
from genframe.data.fingerprint import data_fingerprint
from genframe.data.holdout import SPLITS, check_split, holdout_indices
from genframe.data.prepared import PreparedImages
from genframe.data.progress import with_progress

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_SIXTEEN_BIT_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
_ORIENTATION = 0x0112  # the EXIF tag a camera sets instead of turning the pixels
_TURNED = {5, 6, 7, 8}  # orientations shown rotated by 90 degrees: width and height swap
_DECODE_CHUNK = 256  # images per chunk written to the cache: bounds memory, whatever the folder's size


@dataclass(frozen=True)
class ImageFile:
    relative: str  # under data.path, "/"-separated: how messages and the fingerprint name the file
    path: Path
    split: str | None  # "train" or "test" when the folder has its own splits
    label: str | None  # the class folder, when the images are labelled


class ImageFolder(PreparedImages):
    """A folder of images; see the module's description for the layouts it reads."""

    name: ClassVar[str] = "imagefolder"

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
        folder = _data_folder(path)
        source = os.fspath(path)
        files = find_images(folder, source)
        own_splits = files[0].split is not None
        settings = {"dataset": self.name, "split": split, "size": size, "channels": channels,
                    "test_fraction": None if own_splits else test_fraction}
        label = f"imagefolder {split} split of {source}"
        fingerprint = data_fingerprint([(file.relative, file.path) for file in files], settings, label)
        if own_splits:
            selected = [file for file in files if file.split == split]
        else:
            chosen = holdout_indices([file.relative for file in files], split, test_fraction, f"data.path {source}")
            selected = [files[i] for i in chosen]
        entry = load_or_prepare(
            fingerprint, lambda: _prepare(files, selected, size, channels, source, label), label
        )
        super().__init__(split, entry, fingerprint)


def _data_folder(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        raise DataError("data.path is not set; dataset 'imagefolder' reads a folder of images: "
                        "set data.path=/path/to/images")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DataError(f"data.path {os.fspath(path)} does not exist; set data.path to a folder of images")
    if not folder.is_dir():
        raise DataError(f"data.path {os.fspath(path)} is a file, not a folder; imagefolder reads a folder of "
                        f"images (for a .pt, .npy or .npz file use data.name=tensorfile)")
    return folder


def find_images(folder: Path, source: str) -> list[ImageFile]:
    """Every image under ``folder``, sorted by relative path, with its split and class (if any)."""
    present = [split for split in SPLITS if (folder / split).is_dir()]
    own_splits = len(present) == len(SPLITS)
    if present and not own_splits:  # a lone train/ would otherwise be read as the one class "train"
        missing = next(split for split in SPLITS if split not in present)
        raise DataError(f"data.path {source} has a {present[0]}/ folder but no {missing}/ folder; add {missing}/ "
                        f"(laid out like {present[0]}/), or move the class folders up out of {present[0]}/")
    if own_splits:
        beside = sorted(p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name not in SPLITS
                        and (p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES))
        if beside:  # they would be left out without a word
            raise DataError(f"data.path {source} holds {', '.join(beside[:3])} beside its train/ and test/ folders; "
                            "move them into train/ or test/, or out of the folder")
    groups = [(split, folder / split) for split in SPLITS] if own_splits else [(None, folder)]
    found: list[tuple[str | None, Path, str]] = []
    for split, base in groups:
        relatives = _image_paths(base)
        if not relatives:
            where = source if split is None else f"{source}/{split}"
            raise DataError(f"data.path {where} holds no image files ({', '.join(IMAGE_SUFFIXES)}); put images "
                            f"in it, directly or in one sub-folder per class")
        found += [(split, base, relative) for relative in relatives]
    labelled = all("/" in relative for _, _, relative in found)
    files = [
        ImageFile(relative if split is None else f"{split}/{relative}", base / relative, split,
                  relative.split("/", 1)[0] if labelled else None)
        for split, base, relative in found
    ]
    return sorted(files, key=lambda file: file.relative)


def _image_paths(base: Path) -> list[str]:
    """Relative paths of the image files under ``base``, hidden files and folders left out; folders
    reached through links are followed, each real folder once (a link back up would loop forever)."""
    relatives, seen = [], set()
    for directory, subdirectories, names in os.walk(base, followlinks=True):
        real = os.path.realpath(directory)
        if real in seen:
            subdirectories[:] = []
            continue
        seen.add(real)
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in names:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                relatives.append(Path(directory, name).relative_to(base).as_posix())
    return sorted(relatives)


def _prepare(
    files: list[ImageFile], selected: list[ImageFile], size: int | None, channels: int | None, source: str,
    label: str,
) -> Prepared:
    """Check every image's header (both splits, so they agree on shape), then decode ``selected`` lazily."""
    headers = [_read_header(file, source) for file in with_progress(files, len(files), f"{label}: checking")]
    if channels is None:
        channels = 1 if all(grey for _, _, grey in headers) else 3
    if size is None:
        width, height = headers[0][:2]
        for file, (other_width, other_height, _) in zip(files, headers):
            if (other_width, other_height) != (width, height):
                raise DataError(f"data.path {source}: images differ in size: {files[0].relative} is {width}x{height} "
                                f"and {file.relative} is {other_width}x{other_height}; set data.size=N to resize "
                                f"and centre-crop every image to N x N")
    else:
        width = height = size
    classes = sorted({file.label for file in files}) if files[0].label is not None else None
    labels = None
    if classes is not None:
        index = {name: i for i, name in enumerate(classes)}
        labels = np.array([index[file.label] for file in selected], dtype=np.int64)

    def chunks():
        batch = []
        for file in with_progress(selected, len(selected), f"{label}: reading"):
            batch.append(_decode(file, channels, size, source))
            if len(batch) == _DECODE_CHUNK:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    details = {"classes": classes, "num_classes": None if classes is None else len(classes),
               "source": str(Path(source).expanduser().resolve())}
    return Prepared((len(selected), channels, height, width), chunks, labels, details)


def _read_header(file: ImageFile, source: str) -> tuple[int, int, bool]:
    """(width, height, grey) of one image, from its header (palette images: from their palette)."""
    try:
        with Image.open(file.path) as image:
            width, height = image.size
            if image.getexif().get(_ORIENTATION, 1) in _TURNED:  # shown turned by a quarter: as decoded below
                width, height = height, width
            if image.mode in ("P", "PA"):
                palette = image.getpalette("RGB") or []
                grey = all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3))
            else:
                grey = image.mode in _GREY_MODES
            return width, height, grey
    except Exception as exc:  # PIL raises many types for a bad file; each means "cannot be read"
        raise _unreadable(file, source, exc) from None


def _decode(file: ImageFile, channels: int, size: int | None, source: str) -> np.ndarray:
    """One image as uint8 (channels, H, W)."""
    try:
        with Image.open(file.path) as image:
            if size is not None:
                image.draft(image.mode, (size, size))  # JPEG: decode big photos at a reduced scale, far faster
            upright = ImageOps.exif_transpose(image)  # a phone photo the way it is shown, not the way it is stored
            converted = convert_image(upright, channels)
            if size is not None:
                converted = _resize_and_crop(converted, size)
            pixels = np.asarray(converted, dtype=np.uint8)
    except Exception as exc:  # truncated or corrupt data shows only when decoding
        raise _unreadable(file, source, exc) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def convert_image(image: Image.Image, channels: int) -> Image.Image:
    """``image`` as 8-bit grey (1 channel) or RGB (3), 16-bit grey scaled rather than clipped."""
    if image.mode in _SIXTEEN_BIT_GREY_MODES:
        # PIL's convert("L") would clip every value above 255 to white; scale 16 bits to 8 instead.
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    elif image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # a palette's transparency, resolved the way PIL asks it to be
    return image.convert("L" if channels == 1 else "RGB")


def _resize_and_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if (width, height) == (size, size):
        return image
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    # Resampling the centred square (PIL's filter still reads the pixels around it) is resizing the
    # whole image so the shorter side is `size` and then cropping its centre, in one antialiased step.
    return image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def _unreadable(file: ImageFile, source: str, exc: Exception) -> DataError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return DataError(f"image {file.relative} in data.path {source} cannot be read ({reason}); replace or delete "
                     f"that file")
