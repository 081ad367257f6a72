"""Shared test setup: real MNIST from ../shared/datasets, tiny fast configs, a fresh plugin host per test."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "datasets"

# Offline machines read the shared copy in place; a user's own GENFRAME_DATA_DIR wins.
if "GENFRAME_DATA_DIR" not in os.environ and SHARED_DATA.is_dir():
    os.environ["GENFRAME_DATA_DIR"] = str(SHARED_DATA)
# The quality metric's classifier is trained once per test session, never into the user's cache.
os.environ["GENFRAME_CACHE_DIR"] = tempfile.mkdtemp(prefix="genframe-test-cache-")

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
