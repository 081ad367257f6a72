"""The user's own data: the imagefolder and tensorfile datasets, their cache, their errors, and a run on them.

Every file is made on the fly in tmp_path (tens of small images); the prepared-dataset cache goes to a
per-test folder, never to the home directory.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image

import genframe
from genframe.config.sections import DataConfig
from genframe.contracts.errors import ConfigError, DataError
from genframe.data import datacache
from genframe.data.holdout import holdout_indices
from genframe.data.imagefolder import ImageFolder
from genframe.data.tensorfile import TensorFile
from genframe.plugins.registry import Registry
from genframe.training.runsetup import Subset, build_dataset


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENFRAME_CACHE_DIR", str(cache))
    return cache


def random_pixels(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.RandomState(seed).randint(0, 256, shape, dtype=np.uint8)


def write_images(folder: Path, count: int, shape: tuple[int, ...] = (32, 32, 3), seed: int = 0,
                 suffix: str = ".png") -> dict[str, np.ndarray]:
    """``count`` random images saved in ``folder``; returns name -> pixels (H, W[, 3])."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(count):
        pixels = random_pixels(seed * 1000 + i, shape)
        Image.fromarray(pixels).save(folder / f"img{i:03d}{suffix}")
        written[f"img{i:03d}{suffix}"] = pixels
    return written


def as_chw(pixels: np.ndarray) -> np.ndarray:
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def all_images(dataset) -> torch.Tensor:
    return dataset.get_batch(torch.arange(len(dataset)))


def scaled(pixels: np.ndarray) -> torch.Tensor:
    """What MNIST makes of uint8 pixels."""
    return (torch.from_numpy(np.ascontiguousarray(pixels)).float() - 127.5) / 127.5


def data_error(build, *parts: str) -> str:
    with pytest.raises(DataError) as caught:
        build()
    message = str(caught.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


# --- imagefolder ---------------------------------------------------------------------------------------------


def test_class_folders_are_labels_and_the_holdout_splits_them_without_overlap(tmp_path):
    cat = write_images(tmp_path / "pets" / "cat", 12, seed=1)
    dog = write_images(tmp_path / "pets" / "dog", 8, seed=2)
    (tmp_path / "pets" / "empty").mkdir()  # a class folder without images is no class
    train = ImageFolder("train", path=str(tmp_path / "pets"))
    test = ImageFolder("test", path=str(tmp_path / "pets"))
    assert (len(train), len(test)) == (18, 2)  # round(20 * 0.1) held out
    assert train.classes == test.classes == ["cat", "dog"] and train.num_classes == 2
    assert train.example_shape == (3, 32, 32)
    assert train.fingerprint != test.fingerprint and len(train.fingerprint) == 64
    by_pixels = {as_chw(p).tobytes(): label for label, images in enumerate((cat, dog)) for p in images.values()}
    seen = []
    for dataset in (train, test):
        for image, label in zip(all_images(dataset), dataset.labels.tolist()):
            pixels = (image * 127.5 + 127.5).round().to(torch.uint8).numpy().tobytes()
            assert by_pixels[pixels] == label  # every image read exactly, with its class
            seen.append(pixels)
    assert sorted(seen) == sorted(by_pixels)  # train and test together: every image once
    again = ImageFolder("test", path=str(tmp_path / "pets"))
    assert torch.equal(all_images(again), all_images(test))  # the same hold-out every time


def test_holdout_is_a_fixed_function_of_the_names():
    names = [f"class{i % 3}/img{i:03d}.png" for i in range(50)]
    test = holdout_indices(names, "test", 0.2, "x")
    train = holdout_indices(names, "train", 0.2, "x")
    assert len(test) == 10 and set(test).isdisjoint(train) and sorted([*test, *train]) == list(range(50))
    # A fixed permutation, not a random one: these rows on every machine, with every library version.
    assert test.tolist() == [7, 8, 12, 17, 21, 27, 30, 44, 45, 48]


def test_images_in_the_root_are_unlabelled_grey_and_scaled_like_mnist(tmp_path):
    root = tmp_path / "grey"
    root.mkdir()
    for i in range(10):
        pixels = np.full((8, 8), 17 * i, dtype=np.uint8)
        pixels[0, 0], pixels[0, 1] = 0, 255
        Image.fromarray(pixels, mode="L").save(root / f"{i}.png")
    train = ImageFolder("train", path=str(root))
    assert train.labels is None and train.num_classes is None and train.classes is None
    assert train.example_shape == (1, 8, 8)
    batch = all_images(train)
    assert batch.dtype == torch.float32
    assert (batch[:, 0, 0, 0] == -1.0).all() and (batch[:, 0, 0, 1] == 1.0).all()  # 0 -> -1.0, 255 -> 1.0
    assert batch.min() == -1.0 and batch.max() == 1.0


def test_train_and_test_folders_are_the_splits(tmp_path):
    root = tmp_path / "data"
    write_images(root / "train" / "a", 5, seed=1)
    write_images(root / "train" / "b", 6, seed=2)
    write_images(root / "test" / "a", 2, seed=3)
    write_images(root / "test" / "b", 3, seed=4)
    train = ImageFolder("train", path=str(root), test_fraction=0.5)
    test = ImageFolder("test", path=str(root))
    assert (len(train), len(test)) == (11, 5)  # the folders, not the hold-out
    assert train.classes == test.classes == ["a", "b"]
    assert train.labels.tolist() == [0] * 5 + [1] * 6 and test.labels.tolist() == [0, 0, 1, 1, 1]


def test_size_resizes_the_shorter_side_then_crops_the_centre_and_channels_convert(tmp_path):
    root = tmp_path / "wide"
    root.mkdir()
    for i in range(4):
        pixels = np.zeros((20, 40, 3), dtype=np.uint8)  # 40 wide, 20 high: columns 10..29 are the centre
        pixels[:, 10:30] = (200, 100, 50)
        Image.fromarray(pixels).save(root / f"{i}.png")
    Image.fromarray(np.zeros((30, 60, 3), dtype=np.uint8)).save(root / "big.jpg")  # another size is fine now
    centre = ImageFolder("train", path=str(root), size=20, test_fraction=0.2)
    assert centre.example_shape == (3, 20, 20)
    coloured = [image for image in all_images(centre) if image.max() > -1]
    luma = (200 * 19595 + 100 * 38470 + 50 * 7471 + 0x8000) >> 16
    for image in coloured:  # exactly the centre: no black border from the sides
        assert torch.equal(image, scaled(np.broadcast_to(np.array([200, 100, 50], np.uint8)[:, None, None], (3, 20, 20))))
    grey = ImageFolder("train", path=str(root), size=8, channels=1, test_fraction=0.2)
    assert grey.example_shape == (1, 8, 8)
    inner = [image[0, 2:6, 2:6] for image in all_images(grey) if image.max() > -1]
    assert inner and all(torch.allclose(part, scaled(np.full((4, 4), luma, np.uint8)), atol=1 / 127.5)
                         for part in inner)


def test_channels_default_to_rgb_when_any_image_is_coloured_and_grey_becomes_rgb_on_request(tmp_path):
    root = tmp_path / "mixed"
    write_images(root, 4, shape=(16, 16), seed=1)  # grey
    write_images(root / "more", 1, shape=(16, 16, 3), seed=2)  # one colour image (unlabelled: files in root)
    assert ImageFolder("train", path=str(root)).example_shape == (3, 16, 16)
    grey_only = tmp_path / "grey"
    images = write_images(grey_only, 5, shape=(16, 16), seed=3, suffix=".bmp")
    assert ImageFolder("train", path=str(grey_only)).example_shape == (1, 16, 16)
    rgb = ImageFolder("train", path=str(grey_only), channels=3)
    assert rgb.example_shape == (3, 16, 16)
    batch = all_images(rgb)
    assert torch.equal(batch[:, 0], batch[:, 1]) and torch.equal(batch[:, 1], batch[:, 2])
    assert {scaled(p).numpy().tobytes() for p in images.values()} >= {b[0].numpy().tobytes() for b in batch}


def test_gif_webp_and_jpeg_are_read(tmp_path):
    root = tmp_path / "formats"
    write_images(root / "g", 3, shape=(16, 16, 3), seed=1, suffix=".gif")
    write_images(root / "w", 3, shape=(16, 16, 3), seed=2, suffix=".webp")
    write_images(root / "j", 3, shape=(16, 16, 3), seed=3, suffix=".jpeg")
    (root / "j" / "notes.txt").write_text("not an image")
    train = ImageFolder("train", path=str(root))
    test = ImageFolder("test", path=str(root))
    assert len(train) + len(test) == 9 and train.classes == ["g", "j", "w"]


# --- tensorfile ----------------------------------------------------------------------------------------------


def test_npy_uint8_without_channels_is_grey_and_unlabelled(tmp_path):
    images = random_pixels(1, (30, 12, 12))
    images[:, 0, 0], images[:, 0, 1] = 0, 255
    np.save(tmp_path / "digits.npy", images)
    train = TensorFile("train", path=str(tmp_path / "digits.npy"))
    test = TensorFile("test", path=str(tmp_path / "digits.npy"))
    assert (len(train), len(test)) == (27, 3) and train.labels is None and train.example_shape == (1, 12, 12)
    rows = holdout_indices([str(i) for i in range(30)], "test", 0.1, "x")
    assert torch.equal(all_images(test), scaled(images[rows][:, None]))
    batch = all_images(train)
    assert (batch[:, 0, 0, 0] == -1.0).all() and (batch[:, 0, 0, 1] == 1.0).all()


def test_npz_float_unit_range_with_y_labels(tmp_path):
    images = np.random.RandomState(0).rand(20, 3, 8, 8).astype(np.float32)
    images[:, :, 0, 0], images[:, :, 0, 1] = 0.0, 1.0
    labels = np.arange(20) % 4
    np.savez(tmp_path / "set.npz", x=images, y=labels)
    train = TensorFile("train", path=str(tmp_path / "set.npz"))
    assert train.example_shape == (3, 8, 8) and train.num_classes == 4
    rows = holdout_indices([str(i) for i in range(20)], "train", 0.1, "x")
    assert train.labels.tolist() == labels[rows].tolist()
    expected = scaled(np.rint(images[rows] * 255).astype(np.uint8))
    assert torch.equal(all_images(train), expected)
    assert (all_images(train)[:, :, 0, 0] == -1.0).all() and (all_images(train)[:, :, 0, 1] == 1.0).all()


def test_pt_dict_signed_range_and_channel_and_size_conversion(tmp_path):
    images = torch.zeros(10, 3, 16, 32)
    images[..., 8:24] = torch.tensor([200, 100, 50]).view(3, 1, 1) / 127.5 - 1  # the centre columns coloured
    images[:, :, 0, 0] = -1.0
    images[:, :, 0, 1] = 1.0
    torch.save({"images": images, "labels": torch.arange(10) % 2}, tmp_path / "set.pt")
    plain = TensorFile("train", path=str(tmp_path / "set.pt"), test_fraction=0.2)
    assert plain.example_shape == (3, 16, 32) and plain.num_classes == 2 and len(plain) == 8
    batch = all_images(plain)
    assert (batch[:, :, 0, 0] == -1.0).all() and (batch[:, :, 0, 1] == 1.0).all()
    grey = TensorFile("train", path=str(tmp_path / "set.pt"), size=16, channels=1, test_fraction=0.2)
    assert grey.example_shape == (1, 16, 16)
    luma = (200 * 19595 + 100 * 38470 + 50 * 7471 + 0x8000) >> 16  # PIL's convert("L")
    assert torch.equal(all_images(grey)[:, :, 4:12, 4:12], scaled(np.full((8, 1, 8, 8), luma, np.uint8)))
    torch.save(images[:, :1], tmp_path / "plain.pt")  # a bare tensor, grey
    assert TensorFile("train", path=str(tmp_path / "plain.pt"), channels=3).example_shape == (3, 16, 32)


# --- the cache -----------------------------------------------------------------------------------------------


def test_a_second_construction_reads_the_cache_and_a_changed_file_is_read_again(tmp_path, monkeypatch, own_cache,
                                                                                capfd):
    write_images(tmp_path / "set" / "a", 6, seed=1)
    write_images(tmp_path / "set" / "b", 6, seed=2)
    first = ImageFolder("train", path=str(tmp_path / "set"))
    assert "read 11 images, cached in" in capfd.readouterr().err
    assert len(list((own_cache / "prepared").glob("*.images.npy"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded although the cache holds it")

    with monkeypatch.context() as patched:
        patched.setattr(Image, "open", no_decoding)
        cached = ImageFolder("train", path=str(tmp_path / "set"))
    assert "from the cache" in capfd.readouterr().err
    assert cached.fingerprint == first.fingerprint
    assert torch.equal(all_images(cached), all_images(first)) and torch.equal(cached.labels, first.labels)

    white = np.full((32, 32, 3), 255, np.uint8)
    Image.fromarray(white).save(tmp_path / "set" / "a" / "img000.png")
    opened, real_open = [], Image.open
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args[0]) or real_open(*args, **kwargs))
    changed = ImageFolder("train", path=str(tmp_path / "set"))
    assert changed.fingerprint != first.fingerprint and opened  # read again
    test = ImageFolder("test", path=str(tmp_path / "set"))
    assert any(bool((image == 1.0).all()) for dataset in (changed, test) for image in all_images(dataset))
    (tmp_path / "set" / "b" / "img005.png").unlink()
    assert ImageFolder("train", path=str(tmp_path / "set")).fingerprint != changed.fingerprint
    assert ImageFolder("train", path=str(tmp_path / "set"), size=16).fingerprint != changed.fingerprint


def test_tensorfile_cache_skips_parsing(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", random_pixels(0, (20, 1, 8, 8)))
    first = TensorFile("train", path=str(tmp_path / "x.npy"))
    monkeypatch.setattr("genframe.data.tensorfile.read_arrays", lambda *a: pytest.fail("the file was parsed again"))
    assert torch.equal(all_images(TensorFile("train", path=str(tmp_path / "x.npy"))), all_images(first))


@pytest.mark.parametrize("damage", ["flip a pixel", "truncate", "drop the description's checksum"])
def test_a_damaged_cache_is_rebuilt_never_trusted(tmp_path, own_cache, damage):
    np.save(tmp_path / "x.npy", random_pixels(0, (20, 1, 8, 8)))
    first = TensorFile("train", path=str(tmp_path / "x.npy"))
    folder = own_cache / "prepared"
    images_file = folder / f"{first.fingerprint}.images.npy"
    content = bytearray(images_file.read_bytes())
    if damage == "flip a pixel":
        content[-1] ^= 0xFF
        images_file.write_bytes(bytes(content))
    elif damage == "truncate":
        images_file.write_bytes(bytes(content[:-10]))
    else:
        (folder / f"{first.fingerprint}.json").write_text("{not json")
    with pytest.warns(UserWarning, match="is damaged"):
        rebuilt = TensorFile("train", path=str(tmp_path / "x.npy"))
    assert torch.equal(all_images(rebuilt), all_images(first))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rewritten whole: trusted again
        assert torch.equal(all_images(TensorFile("train", path=str(tmp_path / "x.npy"))), all_images(first))


def test_large_data_is_memory_mapped_and_gives_the_same_batches(tmp_path, monkeypatch):
    write_images(tmp_path / "set" / "a", 10, seed=1)
    write_images(tmp_path / "set" / "b", 10, seed=2)
    in_memory = ImageFolder("train", path=str(tmp_path / "set"))
    monkeypatch.setattr(datacache, "IN_MEMORY_FRACTION", 0.0)
    mapped = ImageFolder("train", path=str(tmp_path / "set"))
    assert mapped.mapped and not in_memory.mapped and isinstance(mapped.images, np.memmap)
    indices = torch.tensor([5, 0, 17, 5, 3])
    assert torch.equal(mapped.get_batch(indices), in_memory.get_batch(indices))
    assert torch.equal(mapped.to("cpu").labels, in_memory.labels) and mapped.example_shape == (3, 32, 32)
    np.save(tmp_path / "x.npy", random_pixels(0, (20, 3, 8, 8)))
    built_mapped = TensorFile("train", path=str(tmp_path / "x.npy"))  # mapped from the start
    monkeypatch.setattr(datacache, "IN_MEMORY_FRACTION", 0.25)
    assert torch.equal(all_images(built_mapped), all_images(TensorFile("train", path=str(tmp_path / "x.npy"))))


def test_an_unwritable_cache_still_gives_the_data(tmp_path, monkeypatch):
    (tmp_path / "not-a-folder").write_text("a file where the cache folder would go")
    monkeypatch.setenv("GENFRAME_CACHE_DIR", str(tmp_path / "not-a-folder"))
    np.save(tmp_path / "x.npy", random_pixels(0, (20, 1, 8, 8)))
    with pytest.warns(UserWarning, match="could not cache the prepared dataset"):
        dataset = TensorFile("train", path=str(tmp_path / "x.npy"))
    assert len(dataset) == 18 and dataset.get_batch(torch.arange(2)).shape == (2, 1, 8, 8)


def test_reading_many_files_reports_progress(tmp_path, monkeypatch, capfd):
    from genframe.data import progress

    monkeypatch.setattr(progress, "PROGRESS_MIN_FILES", 5)
    monkeypatch.setattr(progress, "LINE_EVERY_SECONDS", 0.0)
    write_images(tmp_path / "set", 8, shape=(8, 8))
    ImageFolder("train", path=str(tmp_path / "set"))
    err = capfd.readouterr().err
    for stage in ("hashing: 8/8 files", "checking: 8/8 files", "reading: 7/7 files, done"):
        assert stage in err, err


# --- the core: config, build_dataset, Subset -----------------------------------------------------------------


def test_build_dataset_passes_the_settings_and_limit_keeps_working(tmp_path):
    write_images(tmp_path / "set" / "a", 10, seed=1)
    write_images(tmp_path / "set" / "b", 10, seed=2)
    registry = genframe.get_host().registry
    data = DataConfig(name="imagefolder", path=str(tmp_path / "set"), size=16, channels=1, limit=5)
    subset = build_dataset(registry, data, "train")
    assert isinstance(subset, Subset) and len(subset) == 5 and subset.example_shape == (1, 16, 16)
    assert subset.num_classes == 2 and len(subset.fingerprint) == 64 and subset.labels.tolist() == [0] * 5
    assert subset.get_batch(torch.arange(5)).shape == (5, 1, 16, 16)


def test_a_setting_the_dataset_does_not_read_is_a_config_error():
    registry = genframe.get_host().registry
    with pytest.raises(ConfigError) as caught:
        build_dataset(registry, DataConfig(name="mnist", path="/some/images"), "train")
    assert str(caught.value).startswith("data.path is not used by dataset 'mnist'; ") and "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="data.test_fraction is not used by dataset 'mnist'"):
        build_dataset(registry, DataConfig(name="mnist", test_fraction=0.2), "train")


def test_a_factory_without_the_new_settings_gets_what_it_always_got():
    calls = []

    def old_style(split, root, download):
        calls.append((split, root, download))
        return "dataset"

    registry = Registry()
    registry.add("dataset", "old", old_style)
    assert build_dataset(registry, DataConfig(name="old"), "test") == "dataset"
    assert calls == [("test", None, True)]


def test_test_fraction_is_checked():
    DataConfig(test_fraction=0.5)
    with pytest.raises(ValueError):
        DataConfig(test_fraction=0.6)
    with pytest.raises(ValueError):
        DataConfig(test_fraction=0)


# --- bad input: one line each, saying what is wrong and what to do -------------------------------------------


def test_folder_errors(tmp_path):
    data_error(lambda: ImageFolder("train"), "data.path is not set", "imagefolder", "set data.path=")
    data_error(lambda: ImageFolder("train", path=str(tmp_path / "nowhere")), "nowhere does not exist")
    (tmp_path / "file.png").write_bytes(b"x")
    data_error(lambda: ImageFolder("train", path=str(tmp_path / "file.png")), "is a file, not a folder", "tensorfile")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    data_error(lambda: ImageFolder("train", path=str(tmp_path / "empty")), "empty holds no image files", ".png")
    data_error(lambda: ImageFolder("validation", path=str(tmp_path / "empty")), "split 'validation'")


def test_corrupt_and_truncated_images_are_named(tmp_path):
    root = tmp_path / "set"
    write_images(root / "a", 5)
    (root / "a" / "broken.png").write_bytes(b"this is no png")
    data_error(lambda: ImageFolder("train", path=str(root)), "image a/broken.png", "cannot be read",
               "replace or delete that file")
    (root / "a" / "broken.png").unlink()
    whole = (root / "a" / "img000.png").read_bytes()
    (root / "a" / "img000.png").write_bytes(whole[: len(whole) // 2])  # header intact, data cut
    data_error(lambda: [ImageFolder(split, path=str(root)) for split in ("train", "test")],
               "image a/img000.png", "cannot be read")


def test_mixed_sizes_need_data_size(tmp_path):
    root = tmp_path / "set"
    write_images(root, 3, shape=(32, 32, 3))
    Image.fromarray(random_pixels(9, (24, 40, 3))).save(root / "wide.png")
    data_error(lambda: ImageFolder("train", path=str(root)), "img000.png is 32x32", "wide.png is 40x24",
               "set data.size=N")
    assert ImageFolder("train", path=str(root), size=24).example_shape == (3, 24, 24)


def test_tensorfile_errors(tmp_path):
    data_error(lambda: TensorFile("train"), "data.path is not set", "tensorfile")
    data_error(lambda: TensorFile("train", path=str(tmp_path / "none.npy")), "none.npy does not exist")
    (tmp_path / "images.csv").write_text("1,2,3")
    data_error(lambda: TensorFile("train", path=str(tmp_path / "images.csv")), "suffix '.csv'", ".pt", ".npy", ".npz")
    data_error(lambda: TensorFile("train", path=str(tmp_path)), "is a folder", "imagefolder")

    np.save(tmp_path / "last.npy", random_pixels(0, (10, 8, 8, 3)))
    data_error(lambda: TensorFile("train", path=str(tmp_path / "last.npy")), "shape 10 x 8 x 8 x 3",
               "accepted shapes: N x C x H x W with C 1 or 3, or N x H x W", "transpose")
    np.save(tmp_path / "flat.npy", random_pixels(0, (10, 64)))
    data_error(lambda: TensorFile("train", path=str(tmp_path / "flat.npy")), "shape 10 x 64", "accepted shapes")
    np.save(tmp_path / "wide.npy", np.linspace(0, 2, 10 * 64, dtype=np.float32).reshape(10, 8, 8))
    data_error(lambda: TensorFile("train", path=str(tmp_path / "wide.npy")), "float images ranging from 0 to 2",
               "[0, 1] or in [-1, 1]")
    np.save(tmp_path / "nan.npy", np.full((10, 8, 8), np.nan, np.float32))
    data_error(lambda: TensorFile("train", path=str(tmp_path / "nan.npy")), "NaN")
    np.savez(tmp_path / "short.npz", images=random_pixels(0, (10, 8, 8)), labels=np.arange(9))
    data_error(lambda: TensorFile("train", path=str(tmp_path / "short.npz")), "9 labels for 10 images")
    np.savez(tmp_path / "keys.npz", pictures=random_pixels(0, (10, 8, 8)))
    data_error(lambda: TensorFile("train", path=str(tmp_path / "keys.npz")), "'pictures'", "'images' or 'x'")
    torch.save({"images": torch.zeros(10, 1, 8, 8), "labels": torch.zeros(10, 3)}, tmp_path / "onehot.pt")
    data_error(lambda: TensorFile("train", path=str(tmp_path / "onehot.pt")), "labels of shape (10, 3)", "argmax")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    data_error(lambda: TensorFile("train", path=str(tmp_path / "junk.pt")), "torch.load(weights_only=True)")


# --- end to end ------------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:.*run the ATen path:UserWarning")  # colour images run the slower path
def test_train_an_ebm_on_a_folder_of_colour_images(tmp_path):
    write_images(tmp_path / "faces" / "one", 20, seed=1)
    write_images(tmp_path / "faces" / "two", 20, seed=2)
    overrides = [*TINY, "trainer.max_steps=2", "data.name=imagefolder", f"data.path={tmp_path / 'faces'}",
                 "model.in_channels=3", "model.image_size=32", "trainer.device=cpu"]
    result = genframe.train("ebm", overrides=overrides, run_dir=tmp_path / "run", quiet=True)
    assert result.status == "completed" and result.step == 2
    assert genframe.load(tmp_path / "run").sample(4, steps=2).images.shape == (4, 3, 32, 32)


def test_review_findings_on_layouts_and_values_are_one_line_each(tmp_path):
    lone = tmp_path / "lone"
    write_images(lone / "train" / "cat", 3)
    write_images(lone / "train" / "dog", 3, seed=1)
    with pytest.raises(DataError, match="has a train/ folder but no test/ folder"):
        ImageFolder("train", path=str(lone))  # not one class called "train"
    extra = tmp_path / "extra"
    for split in ("train", "test", "extra"):
        write_images(extra / split / "cat", 2)
    with pytest.raises(DataError, match="holds extra beside its train/ and test/ folders"):
        ImageFolder("train", path=str(extra))
    np.save(tmp_path / "mask.npy", (np.arange(64 * 6).reshape(6, 8, 8) % 2).astype(np.uint8))
    with pytest.raises(DataError, match="values are all 0 or 1, read as 0..255 they are black"):
        TensorFile("train", path=str(tmp_path / "mask.npy"))


def test_the_quality_classifier_takes_sides_that_are_not_a_multiple_of_8():
    from genframe.using.classifier import FeatureClassifier

    features, logits = FeatureClassifier(3, 4, 28)(torch.zeros(2, 3, 28, 28))
    assert features.shape == (2, 128) and logits.shape == (2, 4)


def test_non_square_data_is_told_to_set_data_size():
    recipe = genframe.get_recipe("ebm")
    config = recipe.fit_to_data(genframe.recipe_config("ebm", None, []), (3, 16, 32))
    with pytest.raises(ConfigError, match="not square; .* set data.size=N"):
        recipe.check_data(config, (3, 16, 32), "tensorfile")


def test_a_photo_is_read_the_way_it_is_shown_exif_orientation(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255  # left half white, as stored: 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    Image.fromarray(pixels).save(folder / "a.jpg", exif=exif, quality=95)
    Image.fromarray(pixels).save(folder / "b.jpg", exif=exif, quality=95)
    data = ImageFolder("train", path=str(folder), test_fraction=0.5)
    assert data.example_shape == (3, 40, 20)  # 20 wide, 40 high, as a viewer shows it
    image = data.get_batch(torch.tensor([0]))[0]
    assert image[:, :18].mean() > 0.9 and image[:, 22:].mean() < -0.9  # the white half is now on top
