"""Sampling a loaded model to files: a grid, a GIF of the chains, a streamed ``.npy``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import torch

from genframe.contracts.components import SampleOutput
from genframe.contracts.errors import RunError
from genframe.plugins.recipes import get_recipe
from genframe.plugins.registry import following_runs
from genframe.using.load import load
from genframe.using.outputs import check_output_paths, picture_name
from genframe.util.atomic import atomic_write

if TYPE_CHECKING:
    from genframe.using.generation import NpyWriter


@following_runs
def sample_to_files(
    path: str | Path,
    out: str | Path,
    n: int = 64,
    steps: int | None = None,
    gif: str | Path | None = None,
    frames: int = 50,
    seed: int = 0,
    device: str = "auto",
    tensor: str | Path | None = None,
    chunk: int | None = None,
    grid_n: int = 256,
    progress: Callable[[int], None] | None = None,
) -> SampleOutput:
    """Generate ``n`` samples from a trained run, ``chunk`` at a time (default: by device), in memory
    that does not grow with ``n``: each chunk is written and dropped before the next is made.

    Writes the recipe's picture of the first ``grid_n`` (``Recipe.draw_samples``: an image grid by
    default) to ``out``, and if asked its animation of the first chains (``Recipe.draw_chain``) to
    ``gif`` and all samples to ``tensor``. ``progress(k)`` is called as each chunk of ``k`` samples is
    done. Returns the first ``grid_n`` samples and the kept chain, not all ``n``.

    The tensor file is NumPy's ``.npy`` (an (n, ...) array shaped like the dataset's examples, float32
    for images, in the data's range): ``numpy.load(tensor, mmap_mode="r")`` reads it without loading
    it whole, ``torch.from_numpy(numpy.load(tensor))`` gives a tensor. It is written chunk by chunk
    under a temporary name in its folder and renamed into place once complete, so an interrupted run
    never leaves a partial file under the name. Any other name (``.pt`` included) is refused in one
    line rather than kept working through ``torch.save``: that needs every sample in memory at once,
    so a file name would bring back the memory growth with ``n`` this removes (docs/performance.md).

    Every output path is checked before the model is loaded: a missing or unwritable folder is a
    :class:`RunError`, not a failure after all the sampling.
    """
    from genframe.using.generation import NpyWriter, iter_chunks

    check_output_paths({"--out": picture_name("--out", out, ".png"), "--gif": picture_name("--gif", gif, ".gif"),
                        "--tensor": tensor})
    loaded = load(path, device)
    recipe = get_recipe(loaded.recipe_name)
    total = loaded.sampler.generate_steps if steps is None else steps
    keep_every = max(1, (total or 1) // frames) if gif else None
    chunks = iter_chunks(loaded.sampler, loaded.model, n, steps, seed, stream=0, device=loaded.device,
                         chunk=chunk, keep_every=keep_every, keep_n=grid_n)
    kept = SampleOutput(torch.empty(0))

    def stream(handle: BinaryIO | None) -> None:
        nonlocal kept
        kept = _stream_chunks(chunks, NpyWriter(handle, n) if handle is not None else None, grid_n, progress)

    if tensor is not None:  # first: the costly result is on disk before anything else can fail
        with writing("--tensor", tensor):
            atomic_write(tensor, stream)
    else:
        stream(None)
    with writing("--out", out):
        recipe.draw_samples(kept.images, Path(out))
    if gif:
        with writing("--gif", gif):
            recipe.draw_chain(kept.chain or [kept.images], Path(gif))
    return kept


@contextlib.contextmanager
def writing(option: str, path: str | Path) -> Iterator[None]:
    """A write that fails (a full disk, a folder gone since the check) is one line naming the file, not a
    traceback; the writes are atomic, so nothing half-written is left under the name."""
    try:
        yield
    except OSError as error:
        raise RunError(f"could not write {path} ({option}): {error.strerror or error}; free disk space or write "
                       "elsewhere (nothing half-written was left under that name)") from None


def _stream_chunks(chunks: Iterator[SampleOutput], writer: NpyWriter | None, grid_n: int,
                   progress: Callable[[int], None] | None) -> SampleOutput:
    """Write each chunk to ``writer`` (if any) and drop it, keeping only the first ``grid_n`` samples
    and the first chunk's chain; returns what was kept."""
    from genframe.using.generation import mean_nfe

    shown: list[torch.Tensor] = []
    chain: list[torch.Tensor] = []
    counts: list[tuple[int | None, int]] = []
    count = 0
    for output in chunks:
        counts.append((output.nfe, output.images.shape[0]))
        if writer is not None:
            writer.append(output.images)
        if count < grid_n:
            # a clone: a slice would keep the whole chunk's storage alive
            shown.append(output.images[:grid_n - count].clone())
            count += shown[-1].shape[0]
        chain = chain or output.chain
        if progress is not None:
            progress(output.images.shape[0])
    if writer is not None:
        writer.close()
    return SampleOutput(torch.cat(shown), chain, mean_nfe(counts))
