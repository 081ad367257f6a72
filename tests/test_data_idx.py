"""Tests for the IDX reader: real MNIST files parse, and each kind of damage is a clear DataError."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_datasets

from genframe.contracts.errors import DataError
from genframe.data.idx import read_idx, read_idx_bytes


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    return shared_datasets() / "mnist"


@pytest.fixture(scope="module")
def label_bytes(mnist_dir: Path) -> bytes:
    """Decompressed t10k labels: a small, real, valid IDX file to damage in various ways."""
    return gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())


def test_real_training_files_parse(mnist_dir: Path) -> None:
    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert sorted(np.unique(labels).tolist()) == list(range(10))
    assert labels[0] == 5
    # Digits are dark-on-light inverted: mostly 0 background with some full-intensity strokes.
    assert images.min() == 0 and images.max() == 255
    assert 0.1 < (images[0] > 0).mean() < 0.5


def test_real_test_files_parse(mnist_dir: Path) -> None:
    assert read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz").shape == (10000, 28, 28)
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,) and labels[0] == 7


def test_raw_and_gzip_give_identical_arrays(mnist_dir: Path, tmp_path: Path) -> None:
    gz = mnist_dir / "t10k-images-idx3-ubyte.gz"
    raw = tmp_path / "t10k-images-idx3-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    np.testing.assert_array_equal(read_idx(gz), read_idx(raw))


def test_compression_is_detected_by_content_not_suffix(label_bytes: bytes, tmp_path: Path) -> None:
    raw_named_gz = tmp_path / "labels.gz"
    raw_named_gz.write_bytes(label_bytes)
    gz_named_raw = tmp_path / "labels"
    gz_named_raw.write_bytes(gzip.compress(label_bytes))
    np.testing.assert_array_equal(read_idx(raw_named_gz), read_idx(gz_named_raw))
    assert read_idx(raw_named_gz).shape == (10000,)


def test_multibyte_big_endian_types_are_decoded() -> None:
    values = [1, -2, 70000, 2**31 - 1, 0, -(2**31)]
    data = bytes([0, 0, 0x0C, 2]) + struct.pack(">II", 2, 3) + struct.pack(">6i", *values)
    array = read_idx_bytes(data, "ints.idx")
    assert array.shape == (2, 3)
    assert array.dtype.isnative and array.dtype.kind == "i" and array.dtype.itemsize == 4
    assert array.ravel().tolist() == values


def _damaged(label_bytes: bytes) -> dict[str, bytes]:
    good_gz = gzip.compress(label_bytes)
    return {
        "empty": b"",
        "wrong-magic": b"\x12\x34" + label_bytes[2:],
        "unknown-type": label_bytes[:2] + b"\x07" + label_bytes[3:],
        "zero-dims": label_bytes[:3] + b"\x00" + label_bytes[4:],
        "header-cut": label_bytes[:6],
        "truncated": label_bytes[:-10],
        "trailing": label_bytes + b"\x00\x00\x00",
        "bad-gzip": good_gz[:10] + b"\xff" * 40 + good_gz[50:],
        "gzip-cut": good_gz[: len(good_gz) // 2],
        "gzip-of-truncated": gzip.compress(label_bytes[:-1]),
    }


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "wrong-magic",
        "unknown-type",
        "zero-dims",
        "header-cut",
        "truncated",
        "trailing",
        "bad-gzip",
        "gzip-cut",
        "gzip-of-truncated",
    ],
)
def test_damaged_files_raise_one_line_data_error(kind: str, label_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / f"damaged-{kind}-idx1-ubyte.gz"
    path.write_bytes(_damaged(label_bytes)[kind])
    with pytest.raises(DataError) as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    assert "delete it" in message  # every content error says how to fix it


def test_error_messages_say_what_was_expected(label_bytes: bytes) -> None:
    with pytest.raises(DataError, match=r"truncated.*9998 bytes; expected 10008 bytes for shape 10000"):
        read_idx_bytes(label_bytes[:-10], "x")
    with pytest.raises(DataError, match=r"trailing bytes.*10009 bytes; expected 10008"):
        read_idx_bytes(label_bytes + b"\x00", "x")
    with pytest.raises(DataError, match=r"bad magic number 0x12340801"):
        read_idx_bytes(b"\x12\x34" + label_bytes[2:], "x")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope-idx1-ubyte.gz"
    with pytest.raises(DataError, match="nope-idx1-ubyte.gz"):
        read_idx(missing)
