"""Large-batch generation: chunks, progress, the tensor file, and the retry on GPU out-of-memory."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import genframe
from genframe.cli import cli
from genframe.generation import generate_in_chunks
from genframe.interfaces import SampleOutput, Sampler

from conftest import TINY, shared_datasets


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run on real MNIST, sampled from by every test here."""
    shared_datasets()
    run = tmp_path_factory.mktemp("gen") / "run"
    genframe.reset_host()
    genframe.train("ebm", overrides=TINY, run_dir=run, quiet=True)
    return run


def test_cli_sample_many_in_chunks_writes_grid_and_tensor(trained_run, tmp_path):
    grid, tensor = tmp_path / "grid.png", tmp_path / "all.pt"
    args = ["sample", str(trained_run), "--n", "1100", "--steps", "3", "--chunk", "400", "--grid-n", "16",
            "--out", str(grid), "--tensor", str(tensor)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {grid}, {tensor}" in result.output
    assert "sampling: 400/1100\nsampling: 800/1100\nsampling: 1100/1100" in result.output  # progress, per chunk
    images = torch.load(tensor)
    assert images.shape == (1100, 1, 32, 32) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert len({images[i].sum().item() for i in range(0, 1100, 100)}) == 11  # chunks drew different noise
    assert Image.open(grid).size == (2 * (4 * 34 + 2),) * 2  # 4x4 grid: --grid-n 16 of the 1100

    # The same call gives the same samples; the first chunk is what a single small call makes.
    again = tmp_path / "again.pt"
    assert CliRunner().invoke(cli, [*args[:-1], str(again)]).exit_code == 0
    assert torch.equal(torch.load(again), images)
    first = genframe.load(trained_run).sample(400, steps=3, seed=0).images
    assert torch.equal(first, images[:400])


def test_sample_to_files_reports_progress_per_chunk(trained_run, tmp_path):
    seen: list[int] = []
    output = genframe.sample_to_files(trained_run, tmp_path / "g.png", n=250, steps=2, chunk=100, progress=seen.append)
    assert seen == [100, 100, 50] and output.images.shape[0] == 250


class RunsOutOfMemory(Sampler):
    """Uniform noise, but raises the CUDA out-of-memory error for chunks above ``limit``."""

    generate_steps = 1

    def __init__(self, limit: int) -> None:
        self.limit, self.sizes = limit, []

    def init_state(self, n, device="cpu", generator=None):
        return torch.rand((n, 1, 2, 2), generator=generator, device=device)

    def sample(self, model, init, steps=None, keep_every=None, generator=None):
        self.sizes.append(init.shape[0])
        if init.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return SampleOutput(init)


def test_out_of_memory_halves_the_chunk_and_loses_nothing():
    sampler = RunsOutOfMemory(limit=300)
    images = generate_in_chunks(sampler, None, 1000, None, seed=0, stream=0, device="cpu", chunk=1000).images
    assert images.shape[0] == 1000
    assert sampler.sizes == [1000, 500, 250, 250, 250, 250]  # halved until it fits, then kept small
    assert len({row.sum().item() for row in images}) == 1000  # no chunk repeated another's noise


def test_out_of_memory_at_one_sample_is_raised():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        generate_in_chunks(RunsOutOfMemory(limit=0), None, 4, None, seed=0, stream=0, device="cpu", chunk=4)
