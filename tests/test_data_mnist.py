"""Tests for the MNIST and Fashion-MNIST datasets, loaded from the shared read-only data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import shared_datasets

from genframe.contracts.components import Dataset
from genframe.contracts.errors import DataError
from genframe.data import MNIST, FashionMNIST, read_idx


@pytest.fixture(scope="module")
def train() -> MNIST:
    return MNIST("train", root=shared_datasets(), download=False)


@pytest.fixture(scope="module")
def test_split() -> MNIST:
    return MNIST("test", root=shared_datasets(), download=False)


def test_lengths_labels_and_known_first_labels(train: MNIST, test_split: MNIST) -> None:
    assert isinstance(train, Dataset)
    assert len(train) == 60000 and len(test_split) == 10000
    for ds in (train, test_split):
        assert ds.labels.dtype == torch.int64 and ds.labels.shape == (len(ds),)
        assert sorted(ds.labels.unique().tolist()) == list(range(10))
    assert train.labels[0].item() == 5
    assert test_split.labels[0].item() == 7


def test_get_batch_shape_dtype_and_range(train: MNIST) -> None:
    indices = torch.tensor([0, 59999, 123, 7, 7])
    batch = train.get_batch(indices)
    assert batch.shape == (5, 1, 32, 32)
    assert batch.dtype == torch.float32
    assert batch.min().item() == -1.0 and batch.max().item() == 1.0
    assert train.example_shape == (1, 32, 32) == tuple(batch.shape[1:])
    torch.testing.assert_close(batch[3], batch[4])  # repeated index, same image


def test_border_is_exactly_minus_one_everywhere(train: MNIST) -> None:
    # Check the stored uint8 padding of the whole split, then its scaled value on a batch.
    images = train.images
    assert images.dtype == torch.uint8 and images.shape == (60000, 1, 32, 32)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (images[:, 0][:, border] == 0).all()
    batch = train.get_batch(torch.arange(64))
    assert (batch[:, 0][:, border] == -1.0).all()


def test_pixels_are_the_source_images_centred_and_scaled(test_split: MNIST) -> None:
    source = torch.from_numpy(read_idx(shared_datasets() / "mnist" / "t10k-images-idx3-ubyte.gz").copy())
    indices = torch.tensor([9999, 0, 4242])
    batch = test_split.get_batch(indices)
    expected = (source[indices].float() - 127.5) / 127.5
    torch.testing.assert_close(batch[:, 0, 2:30, 2:30], expected, rtol=0, atol=0)
    # 255 maps to exactly 1 and 0 to exactly -1: no values outside, none lost to clamping.
    assert set(torch.unique(batch).tolist()) >= {-1.0, 1.0}


def test_to_moves_data_and_returns_self(test_split: MNIST) -> None:
    ds = MNIST("test", root=shared_datasets(), download=False)
    moved = ds.to("meta")
    assert moved is ds
    assert ds.images.device.type == "meta" and ds.labels.device.type == "meta"
    assert ds.get_batch(torch.tensor([0, 1])).shape == (2, 1, 32, 32)
    # Meta tensors carry no data, so check values survive a move only where a real device exists.
    if torch.cuda.is_available():
        fresh = MNIST("test", root=shared_datasets(), download=False).to("cuda")
        batch = fresh.get_batch(torch.tensor([0, 5]))
        assert batch.device.type == "cuda"
        torch.testing.assert_close(batch.cpu(), test_split.get_batch(torch.tensor([0, 5])))


def test_fashion_mnist_loads_its_own_files(train: MNIST) -> None:
    root = shared_datasets()
    fashion_train = FashionMNIST("train", root=root, download=False)
    fashion_test = FashionMNIST("test", root=root, download=False)
    assert isinstance(fashion_train, MNIST) and FashionMNIST.name == "fashion_mnist"
    assert len(fashion_train) == 60000 and len(fashion_test) == 10000
    assert fashion_train.labels[0].item() == 9 and fashion_test.labels[0].item() == 9  # ankle boots
    batch = fashion_train.get_batch(torch.arange(8))
    assert batch.shape == (8, 1, 32, 32) and batch.min() == -1.0 and batch.max() <= 1.0
    assert not torch.equal(fashion_train.images[:8], train.images[:8])


@pytest.mark.parametrize("split", ["val", "Train", ""])
def test_bad_split_is_a_data_error(split: str) -> None:
    with pytest.raises(DataError) as info:
        MNIST(split, root=shared_datasets(), download=False)
    message = str(info.value)
    assert repr(split) in message and "'test'" in message and "'train'" in message
    assert "\n" not in message


def test_root_falls_back_to_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GENFRAME_DATA_DIR", str(shared_datasets()))
    assert len(MNIST("test", download=False)) == 10000
    # With an empty data folder and downloads off, loading fails clearly instead of downloading.
    monkeypatch.setenv("GENFRAME_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="mnist/t10k-images-idx3-ubyte.gz"):
        MNIST("test", download=False)
    assert list(tmp_path.iterdir()) == []
