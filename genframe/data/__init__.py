"""Datasets and the file plumbing behind them: IDX parsing, checksummed downloads, MNIST-style sets."""

from genframe.data.download import ensure_dataset_files, resolve_data_root
from genframe.data.idx import read_idx
from genframe.data.mnist import MNIST, FashionMNIST

__all__ = ["MNIST", "FashionMNIST", "ensure_dataset_files", "read_idx", "resolve_data_root"]
