"""Shared test setup: real MNIST from ../shared/datasets, tiny fast configs, a fresh plugin host per test,
the stored MNIST ruler, and the closing line that says which sampler paths ran (docs/contributing.md)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path

import pytest
from sampler_paths import PathReport

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"

# Offline machines read the shared copy in place; a user's own GENFRAME_DATA_DIR wins.
if "GENFRAME_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["GENFRAME_DATA_DIR"] = str(SHARED_DATA)
# The quality metric's classifier cache: the session's own, never the user's, seeded with the stored ruler.
os.environ["GENFRAME_CACHE_DIR"] = tempfile.mkdtemp(prefix="genframe-test-cache-")
RULER = Path(__file__).resolve().parent / "fixtures" / "ruler"


def seed_ruler() -> None:
    """Put the stored MNIST classifier (tests/fixtures/ruler) where genframe looks for it, so every CPU measures
    with the same weights and no session trains them. Fails loudly when ``ClassifierSpec`` has moved on."""
    from genframe.using.classifier import ClassifierSpec, cached_path, write_cached

    record = json.loads((RULER / "mnist.json").read_text(encoding="utf-8"))
    data = (RULER / "mnist.classifier").read_bytes()
    key = ClassifierSpec().key()
    assert record["spec_key"] == key, (f"the stored ruler was trained for ClassifierSpec key {record['spec_key']}, "
                                       f"now {key}: run tests/fixtures/ruler/make_ruler.py")
    assert hashlib.sha256(data).hexdigest() == record["sha256"], "tests/fixtures/ruler/mnist.classifier is damaged"
    write_cached(cached_path("mnist"), data)


seed_ruler()


def read_each_idx_file_once() -> None:
    """Decompress each IDX file (the shared MNIST: 0.4 s a run) once per test session, not at every run a test
    trains in this process. Keyed by the file itself (device, inode), its size and modification time, so a
    test's own damaged or rewritten files are read afresh; the padded images come back as a fresh copy."""
    from genframe.data import mnist

    read, pad = mnist.read_idx, mnist._pad_to_tensor
    arrays: dict[tuple[int, int, int, int], object] = {}  # (device, inode, size, mtime) -> the file's array
    padded: dict[int, object] = {}  # id of an array in ``arrays`` (kept alive there, so its id is its own) -> padding

    def read_idx(path):
        stat = os.stat(path)
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in arrays:
            arrays[key] = read(path)
        return arrays[key]

    def pad_to_tensor(images):
        if id(images) not in padded:
            padded[id(images)] = pad(images)
        return padded[id(images)].clone()

    mnist.read_idx, mnist._pad_to_tensor = read_idx, pad_to_tensor


read_each_idx_file_once()

# W&B in tests: the real package, offline, never phoning home (no error reports, no update checks).
os.environ.setdefault("WANDB_MODE", "offline")
os.environ["WANDB_ERROR_REPORTING"] = "false"
os.environ["WANDB_DISABLE_CODE"] = "true"

# A few SGLD steps on small batches of real MNIST: fast, but every code path runs.
TINY = [
    "trainer.batch_size=16",
    "trainer.max_steps=6",
    "sampler.steps=5",
    "sampler.generate_steps=20",
    "buffer.size=64",
    "logging.log_every=2",
    "logging.sample_n=8",
    "trainer.val_batch_size=2000",
]


def shared_datasets() -> Path:
    """The read-only shared data folder (never copied into the repository); data tests fail without it."""
    path = Path(os.environ.get("GENFRAME_DATA_DIR", SHARED_DATA))
    assert (path / "mnist").is_dir(), f"shared MNIST data not found at {path}/mnist; set GENFRAME_DATA_DIR"
    return path


@pytest.fixture
def data_dir() -> Path:
    path = Path(os.environ["GENFRAME_DATA_DIR"])
    if not (path / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {path}; set GENFRAME_DATA_DIR to the shared datasets folder")
    return path


@pytest.fixture(autouse=True)
def fresh_plugins():
    """Each test sees the installed plugins as they are now (some tests add entry points)."""
    import genframe

    genframe.reset_host()
    yield
    genframe.reset_host()


def free_port() -> int:
    """A port nothing on 127.0.0.1 listens on now, for a c10d rendezvous of torchrun agents on this machine."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


PATH_REPORT = PathReport()


def pytest_configure(config):
    config.addinivalue_line("markers", "sampler_path(name): the test exercises that sampler path "
                                       "(tests/sampler_paths.py)")
    if hasattr(config, "workerinput"):  # an xdist worker: share the cores with the other workers
        import torch

        from genframe.util.openmp import usable_cores

        torch.set_num_threads(max(1, usable_cores() // int(config.workerinput["workercount"])))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: a process per CPU, at most 4 (each holds torch and its own trained fixtures)."""
    from genframe.util.openmp import usable_cores

    return min(4, usable_cores())


FILE_SECONDS = json.loads((Path(__file__).with_name("file_seconds.json")).read_text())["seconds"]


def pytest_collection_modifyitems(items):
    PATH_REPORT.label(items)  # in the process that runs them (an xdist worker sends the labels with each report)
    # the longest files first (each file's tests in their own order), so the parallel processes end together:
    # xdist hands out whole files in this order (--no-loadscope-reorder in pyproject.toml)
    items.sort(key=lambda item: -FILE_SECONDS.get(item.path.name, 0.0))


def pytest_runtest_logreport(report):
    PATH_REPORT.record(report)


def pytest_unconfigure(config):
    """The output's last line: which sampler paths ran here and which were skipped, and why."""
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None and PATH_REPORT.paths_of and not hasattr(config, "workerinput"):
        reporter.write_line(PATH_REPORT.line())
