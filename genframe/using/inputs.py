"""Sets of images to score, complete or clean, named on the command line: ``genframe score/ood/inpaint/denoise``.

An input is one of

- ``DATASET:SPLIT``: a registered dataset's split, e.g. ``mnist:test``, ``fashion_mnist:train``;
- a built-in set shaped like the model's examples: ``noise`` (uniform in [-1, 1]), ``gaussian`` (N(0, 0.5^2),
  clipped), ``constant`` (each image one random grey level);
- a set made from the run's own dataset's test split: ``flipped`` (upside down, mirrored top to bottom),
  ``flipped:2,4,5,7`` (only those classes), ``inverted`` (black and white swapped);
- image files (``.png``, ``.jpg``...; several given in a row form one set), a folder of them (class
  sub-folders give labels), or a ``.npy``/``.npz``/``.pt`` tensor file (as the ``tensorfile`` dataset reads them).

Every set is read ``chunk`` images at a time (:meth:`ImageSet.chunks`), so work over it keeps memory that
does not grow with its size. Images are float (N, C, H, W) in [-1, 1] like every genframe dataset; one of
another shape than the model's is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genframe.config.sections import DataConfig
from genframe.contracts.errors import DataError, RunError

BUILT_IN = ("noise", "gaussian", "constant")
FROM_TEST_SPLIT = ("flipped", "inverted")
TENSOR_SUFFIXES = (".npy", ".npz", ".pt")

Reader = Callable[[int, int], tuple[torch.Tensor, "torch.Tensor | None"]]


@dataclass
class ImageSet:
    """``count`` images read ``[lo, hi)`` at a time by ``read``; ``dataset`` names the data their labels belong to."""

    name: str
    count: int
    read: Reader
    dataset: str | None = None  # e.g. "mnist": its classifier can tell the labels; None when unlabelled

    def chunks(self, size: int = 500) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        for lo in range(0, self.count, size):
            yield self.read(lo, min(lo + size, self.count))


def parse_inputs(specs: Sequence[str], shape: tuple[int, ...], data: DataConfig, registry, n: int | None = None,
                 seed: int = 0) -> list[ImageSet]:
    """The sets ``specs`` name, each cut to its first ``n`` images (built-in sets: ``n`` images, by default as
    many as the run's test split has); consecutive image files form one set."""
    sets: list[ImageSet] = []
    files: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_file() and path.suffix.lower() not in TENSOR_SUFFIXES:
            files.append(path)
            continue
        if files:
            sets.append(_image_files(files, shape))
            files = []
        sets.append(parse_input(spec, shape, data, registry, n, seed))
    if files:
        sets.append(_image_files(files, shape))
    return [_first(s, n) for s in sets]


def parse_input(spec: str, shape: tuple[int, ...], data: DataConfig, registry, n: int | None = None,
                seed: int = 0) -> ImageSet:
    """One set (see the module's description)."""
    # "mnist:test"; a dataset two plugins offer is qualified by its plugin: "plugin:name:test"
    name, _, argument = spec.rpartition(":") if spec.count(":") > 1 else spec.partition(":")
    if name in BUILT_IN and not argument:
        count = n or len(_test_split(data, registry))
        return ImageSet(name, count, _synthetic(name, shape, seed))
    if name in FROM_TEST_SPLIT:
        return _derived(spec, name, argument, shape, data, registry)
    path = Path(spec).expanduser()
    if path.is_dir():
        return _folder(path, shape)
    if path.is_file():
        return _tensor_file(path, shape)
    if argument == "test" and name == data.name:  # the run's own test split, read as the run reads it
        return _dataset(spec, data.model_copy(update={"limit": None}), argument, shape, registry)
    if argument and name in ("imagefolder", "tensorfile"):
        raise DataError(f"input {spec!r}: give the folder or file of your images itself as the input, e.g. "
                        f"path/to/images/ or images.npy")
    if argument and name.rpartition(":")[2] in registry.names("dataset"):
        if argument not in ("train", "test"):
            raise DataError(f"input {spec!r}: dataset splits are 'train' and 'test', not {argument!r}; "
                            f"e.g. {name}:test")
        return _dataset(spec, DataConfig(name=name, root=data.root, download=data.download), argument, shape,
                        registry)
    if path.suffix and not argument:
        raise DataError(f"input {spec}: there is no such file (in genframe ood, --out names an out-set; the picture "
                        f"goes to --plot)")
    datasets = ", ".join(f"{d}:test" for d in registry.names("dataset") if d not in ("imagefolder", "tensorfile"))
    raise DataError(f"input {spec!r} is no file, folder, dataset split or built-in set; give a path, a dataset "
                    f"split ({datasets}), or one of {', '.join(BUILT_IN + FROM_TEST_SPLIT)}")


def _first(images: ImageSet, n: int | None) -> ImageSet:
    if n is None or images.count <= n:
        return images
    return ImageSet(images.name, n, images.read, images.dataset)


def check_shape(spec: str, got: tuple[int, ...], shape: tuple[int, ...]) -> None:
    if tuple(got) != tuple(shape):
        size = lambda s: f"{s[0]} x {s[1]} x {s[2]}" if len(s) == 3 else "x".join(map(str, s))  # noqa: E731
        raise DataError(f"input {spec} holds images of shape {size(got)} (channels x height x width), but the model "
                        f"takes {size(shape)}; resize or convert them first")


def _test_split(data: DataConfig, registry):
    from genframe.training.runsetup import build_dataset

    return build_dataset(registry, data.model_copy(update={"limit": None}), "test")


def _dataset(spec: str, data: DataConfig, split: str, shape: tuple[int, ...], registry) -> ImageSet:
    from genframe.training.runsetup import build_dataset

    dataset = build_dataset(registry, data, split)
    check_shape(spec, dataset.example_shape, shape)
    labels = dataset.labels

    def read(lo: int, hi: int):
        index = torch.arange(lo, hi)
        return dataset.get_batch(index).float(), None if labels is None else labels[lo:hi].long()

    return ImageSet(spec, len(dataset), read, data.name if labels is not None else None)


def _synthetic(name: str, shape: tuple[int, ...], seed: int) -> Reader:
    """Images drawn chunk by chunk, each from its own stream: any chunk size gives the same images."""
    from genframe.training.runsetup import drawn_generator

    def read(lo: int, hi: int):
        out = torch.empty((hi - lo, *shape))
        for row in range(lo, hi):
            generator = drawn_generator(seed, f"input {name}", row)
            if name == "noise":
                out[row - lo] = torch.rand(shape, generator=generator) * 2 - 1
            elif name == "gaussian":
                out[row - lo] = (torch.randn(shape, generator=generator) * 0.5).clamp(-1, 1)
            else:
                out[row - lo] = torch.rand((), generator=generator) * 2 - 1
        return out, None

    return read


def _derived(spec: str, name: str, argument: str, shape: tuple[int, ...], data: DataConfig, registry) -> ImageSet:
    """Upside-down or inverted images of the run's dataset's test split (of some classes, if asked)."""
    test = _test_split(data, registry)
    check_shape(f"{spec} (made from the {data.name} test split)", test.example_shape, shape)
    rows = torch.arange(len(test))
    if argument:
        if name != "flipped":
            raise DataError(f"input {spec!r}: only flipped takes classes (flipped:2,4,5,7); write {name}")
        if test.labels is None:
            raise DataError(f"input {spec!r}: dataset {data.name} has no labels to pick classes by; write flipped")
        try:
            classes = [int(word) for word in argument.split(",")]
        except ValueError:
            raise DataError(f"input {spec!r}: classes are numbers separated by commas, e.g. flipped:2,4,5,7") from None
        rows = torch.nonzero(torch.isin(test.labels, torch.tensor(classes))).flatten()
        if not len(rows):
            raise DataError(f"input {spec!r}: the {data.name} test split has no images of classes {argument}")
    labels = test.labels

    def read(lo: int, hi: int):
        index = rows[lo:hi]
        images = test.get_batch(index).float()
        images = images.flip(-2) if name == "flipped" else -images
        return images, None if labels is None else labels[index].long()

    # its labels are those of the upright images: a classifier reading these is no use, so none is named
    return ImageSet(spec, len(rows), read, None)


def _image_files(paths: list[Path], shape: tuple[int, ...]) -> ImageSet:
    name = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files ({paths[0].name} ...)"

    def read(lo: int, hi: int):
        return torch.stack([_decode(path, shape) for path in paths[lo:hi]]), None

    _decode(paths[0], shape)  # a wrong size or colour is told now, not after other sets' work
    return ImageSet(name, len(paths), read)


def _folder(folder: Path, shape: tuple[int, ...]) -> ImageSet:
    from genframe.data.imagefolder import find_images

    try:
        files = find_images(folder, str(folder))
    except DataError as exc:
        raise DataError(str(exc).replace("data.path ", "input folder ", 1)) from None
    classes = sorted({file.label for file in files}) if files[0].label is not None else None
    labels = None if classes is None else torch.tensor([classes.index(file.label) for file in files])

    def read(lo: int, hi: int):
        images = torch.stack([_decode(file.path, shape) for file in files[lo:hi]])
        return images, None if labels is None else labels[lo:hi]

    _decode(files[0].path, shape)
    return ImageSet(str(folder), len(files), read)


def _decode(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """One image file as float (C, H, W) in [-1, 1]; a colour image for a grey model or a size that differs
    from the model's is refused."""
    from PIL import Image, ImageOps

    from genframe.data.imagefolder import convert_image  # the dataset's own reading: 16-bit and palettes right

    try:
        with Image.open(path) as image:
            rgb = np.asarray(convert_image(ImageOps.exif_transpose(image), 3), dtype=np.uint8)
    except Exception as exc:  # PIL raises many types for a file it cannot read
        raise DataError(f"input {path} cannot be read as an image ({' '.join(str(exc).split())[:200]})") from None
    channels = shape[0]
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    if channels == 1 and not grey:
        raise DataError(f"input {path} is a colour image, but the model takes one-channel (grey) images; "
                        f"convert it to greyscale first")
    pixels = rgb[..., :1] if channels == 1 else rgb
    check_shape(str(path), (channels, *pixels.shape[:2]), shape)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy()).float() / 127.5 - 1


def _tensor_file(path: Path, shape: tuple[int, ...]) -> ImageSet:
    from genframe.data.tensorfile import as_nchw, check_labels, read_arrays, value_scale

    if path.suffix.lower() not in TENSOR_SUFFIXES:
        raise RunError(f"input {path}: not an image or tensor file")
    what = f"input {path}"
    images, labels = read_arrays(path, what)
    images = as_nchw(images, what)
    check_shape(str(path), tuple(images.shape[1:]), shape)
    scale = value_scale(images, what)
    if labels is not None:
        check_labels(labels, len(images), what)

    def read(lo: int, hi: int):
        block = torch.from_numpy(np.asarray(images[lo:hi], dtype=np.float32))  # floats kept as they are
        block = block / 127.5 - 1 if scale == "uint8" else block * 2 - 1 if scale == "unit" else block
        return block, None if labels is None else torch.from_numpy(np.asarray(labels[lo:hi])).long()

    return ImageSet(str(path), len(images), read)
