"""Large-batch generation: chunks, progress, the streamed tensor file, memory that does not grow with
the sample count, output paths checked before sampling, and the retry on GPU out-of-memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY, shared_datasets
from PIL import Image

import genframe
from genframe.cli.main import cli
from genframe.contracts.components import SampleOutput, Sampler
from genframe.contracts.errors import RunError
from genframe.using.generation import generate_in_chunks


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny run on real MNIST, sampled from by every test here."""
    shared_datasets()
    run = tmp_path_factory.mktemp("gen") / "run"
    genframe.reset_host()
    genframe.train("ebm", overrides=TINY, run_dir=run, quiet=True)
    return run


def test_cli_sample_many_in_chunks_writes_grid_and_tensor(trained_run, tmp_path):
    grid, tensor = tmp_path / "grid.png", tmp_path / "all.npy"
    args = ["sample", str(trained_run), "--n", "1100", "--steps", "3", "--chunk", "400", "--grid-n", "16",
            "--out", str(grid), "--tensor", str(tensor)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert f"wrote {grid}, {tensor}" in result.output
    assert "sampling: 400/1100\nsampling: 800/1100\nsampling: 1100/1100" in result.output  # progress, per chunk
    assert numpy.load(tensor, mmap_mode="r").shape == (1100, 1, 32, 32)  # readable without loading it whole
    images = torch.from_numpy(numpy.load(tensor))
    assert images.shape == (1100, 1, 32, 32) and images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert len({images[i].sum().item() for i in range(0, 1100, 100)}) == 11  # chunks drew different noise
    assert Image.open(grid).size == (2 * (4 * 34 + 2),) * 2  # 4x4 grid: --grid-n 16 of the 1100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.npy", "grid.png"]  # no temporary file left

    # The same call gives the same samples; the first chunk is what a single small call makes.
    again = tmp_path / "again.npy"
    assert CliRunner().invoke(cli, [*args[:-1], str(again)]).exit_code == 0
    assert torch.equal(torch.from_numpy(numpy.load(again)), images)
    first = genframe.load(trained_run).sample(400, steps=3, seed=0).images
    assert torch.equal(first, images[:400])


def test_streamed_tensor_file_equals_generating_all_samples_in_memory(trained_run, tmp_path):
    """The .npy written chunk by chunk holds, bit for bit, what gathering every chunk in memory gives."""
    tensor = tmp_path / "all.npy"
    shown = genframe.sample_to_files(trained_run, tmp_path / "g.png", n=1100, steps=3, chunk=400, grid_n=300,
                                     tensor=tensor)
    loaded = genframe.load(trained_run)
    everything = generate_in_chunks(loaded.sampler, loaded.model, 1100, 3, seed=0, stream=0, device="cpu", chunk=400)
    streamed = torch.from_numpy(numpy.load(tensor))
    assert torch.equal(streamed, everything.images)
    assert torch.equal(shown.images, everything.images[:300])  # the grid: the first grid_n, across two chunks


class FailsOnChunk:
    """Wraps ``Sampler.generate`` to count its calls and raise on call number ``fail_at`` (0: never)."""

    def __init__(self, monkeypatch, fail_at: int = 0) -> None:
        self.calls, self.fail_at, self.generate = 0, fail_at, Sampler.generate
        monkeypatch.setattr(Sampler, "generate", lambda sampler, *args, **kwargs: self(sampler, *args, **kwargs))

    def __call__(self, sampler, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of the sampling
        return self.generate(sampler, *args, **kwargs)


def test_an_interrupted_sample_leaves_no_tensor_file(trained_run, tmp_path, monkeypatch):
    sampler = FailsOnChunk(monkeypatch, fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        genframe.sample_to_files(trained_run, tmp_path / "g.png", n=1000, steps=1, chunk=200,
                                 tensor=tmp_path / "all.npy")
    assert sampler.calls == 3 and list(tmp_path.iterdir()) == []  # no all.npy, no temporary file, no grid


def unwritable_cases(tmp_path):
    """(option, path, fragment of the error) for outputs that cannot be written."""
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    cases = [("--out", tmp_path / "missing" / "g.png", "folder " + str(tmp_path / "missing") + " does not exist"),
             ("--gif", tmp_path / "a-file" / "c.gif", "a-file is not a folder"),
             ("--tensor", tmp_path / "a-folder.npy" / "x.npy", "a-folder.npy does not exist"),
             ("--tensor", tmp_path / "all.pt", "name it all.npy")]
    if Path("/proc/self").is_dir():  # refuses new files even to root, which may write anywhere else
        cases.append(("--out", Path("/proc/g.png"), "folder /proc is not writable"))
    return cases


def test_unwritable_outputs_fail_in_one_line_before_any_sampling(trained_run, tmp_path, monkeypatch):
    sampler = FailsOnChunk(monkeypatch)
    for option, path, fragment in unwritable_cases(tmp_path):
        result = CliRunner().invoke(cli, ["sample", str(trained_run), "--n", "600", "--steps", "1", "--chunk", "200",
                                          "--out", str(tmp_path / "g.png"), option, str(path)])
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1, (option, path, result.output)
        assert lines[0].startswith("Error: ") and fragment in lines[0], (fragment, lines[0])
        assert sampler.calls == 0, option  # refused before the model sampled
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]  # nothing written
    with pytest.raises(RunError, match="it is a folder"):  # the CLI's click.Path says so itself; the API too
        genframe.sample_to_files(trained_run, tmp_path / "a-folder", n=4)
    assert sampler.calls == 0


DRIVER = """
import resource, sys
from genframe.cli.main import cli
try:
    cli(sys.argv[1:], prog_name="genframe")
except SystemExit as stop:
    assert not stop.code, stop.code
print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_memory_mib(run, tmp_path, n: int) -> float:
    """Peak resident memory of ``genframe sample --n n --tensor`` in a fresh process, in MiB."""
    tensor = tmp_path / f"n{n}.npy"
    args = ["sample", str(run), "--n", str(n), "--steps", "0", "--chunk", "500", "--out", str(tmp_path / "g.png"),
            "--tensor", str(tensor)]
    done = subprocess.run([sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert numpy.load(tensor, mmap_mode="r").shape == (n, 1, 32, 32)
    tensor.unlink()
    return int(done.stdout.split("maxrss_kib")[-1]) / 1024


@pytest.mark.slow
def test_sample_memory_does_not_grow_with_n(trained_run, tmp_path):
    """40000 samples are 156 MiB; kept in memory (and concatenated) they would cost twice that more."""
    small, large = peak_memory_mib(trained_run, tmp_path, 500), peak_memory_mib(trained_run, tmp_path, 40000)
    assert large - small < 40, (small, large)
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


class CountsItsEvaluations(Sampler):
    """A third-party ODE-like sampler: each chunk's ``SampleOutput.nfe`` is what an adaptive solver might use."""

    generate_steps = 1

    def init_state(self, n, device="cpu", generator=None):
        return torch.rand((n, 1, 2, 2), generator=generator, device=device)

    def sample(self, model, init, steps=None, keep_every=None, generator=None):
        return SampleOutput(init, nfe=10 if init.shape[0] == 300 else 14)


def test_the_evaluations_a_sampler_counts_are_reported_as_their_mean_over_samples():
    from genframe.using.generation import iter_chunks, mean_nfe
    from genframe.using.sample import _stream_chunks

    gathered = generate_in_chunks(CountsItsEvaluations(), None, 700, None, seed=0, stream=0, device="cpu", chunk=300)
    assert gathered.nfe == round((2 * 300 * 10 + 100 * 14) / 700, 1) == 10.6  # chunks of 300, 300, 100
    streamed = _stream_chunks(iter_chunks(CountsItsEvaluations(), None, 600, None, 0, 0, "cpu", 300), None, 4, None)
    assert streamed.nfe == 10 and isinstance(streamed.nfe, int)  # the same in every chunk: a whole number
    assert generate_in_chunks(RunsOutOfMemory(limit=9), None, 4, None, seed=0, stream=0, device="cpu").nfe is None
    assert mean_nfe([(20, 5), (None, 5)]) is None and mean_nfe([]) is None


def test_out_of_memory_at_one_sample_is_raised():
    with pytest.raises(torch.cuda.OutOfMemoryError):
        generate_in_chunks(RunsOutOfMemory(limit=0), None, 4, None, seed=0, stream=0, device="cpu", chunk=4)


@pytest.mark.parametrize("option", ["--tensor", "--out", "--gif"])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing_half_written(trained_run, tmp_path, monkeypatch,
                                                                                 option):
    import errno
    import os

    target = {"--tensor": "x.npy", "--out": "g.png", "--gif": "c.gif"}[option]
    real_fsync = os.fsync

    def full(fd):  # the disk fills while this output is written (fsync is where a full disk shows at the latest)
        if any(name.startswith(f".{target}.") for name in os.listdir(tmp_path)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    args = ["sample", str(trained_run), "--n", "8", "--steps", "1", "--out", str(tmp_path / "g.png"),
            option, str(tmp_path / target)]
    result = CliRunner().invoke(cli, list(dict.fromkeys(args)) if option == "--out" else args)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("warning")]
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert lines[-1] == (f"Error: could not write {tmp_path / target} ({option}): No space left on device; free disk "
                         "space or write elsewhere (nothing half-written was left under that name)")
    assert not (tmp_path / target).exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
