"""Python API beyond training: recipe configs, loading a trained model, sampling to files.

The CLI calls these same functions; from another project::

    import genframe
    result = genframe.train("ebm", {"trainer": {"max_steps": 20}})
    model = genframe.load(result.run_dir)
    images = model.sample(16, steps=200).images
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch

from genframe.atomic import atomic_write
from genframe.callback_list import CallbackList, chosen_callbacks
from genframe.checkpoint import load_checkpoint, resolve_checkpoint, run_dir_of
from genframe.config import RecipeConfig, build_config
from genframe.context import RunContext
from genframe.errors import CheckpointError, RunError
from genframe.interfaces import SampleOutput, Sampler
from genframe.reproducible import reproducible_kernels
from genframe.pluginfaults import one_line
from genframe.plugins import get_host
from genframe.recipes import get_recipe, recipe_config  # noqa: F401  (part of this API)
from genframe.runsetup import resolve_device, seeded_generator

if TYPE_CHECKING:
    from genframe.generation import NpyWriter


@dataclass
class LoadedModel:
    """A trained model with its sampler and config, ready to sample."""

    recipe_name: str
    config: RecipeConfig
    model: torch.nn.Module
    sampler: Sampler
    device: torch.device
    checkpoint: Path
    step: int
    epoch: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # what loggers saved in the run (e.g. a W&B id)
    exported: bool = False  # loaded from a `genframe export` folder, not from a run
    # what made it: plugin, plugin_version, genframe_version, train_seconds, weights ("model" or "sampling_model")
    provenance: dict[str, Any] = field(default_factory=dict)

    def sample(self, n: int = 64, steps: int | None = None, keep_every: int | None = None, seed: int = 0) -> SampleOutput:
        """``n`` fresh samples with the recipe's generation settings (``steps`` overrides them)."""
        generator = seeded_generator(seed, 0, self.device)
        with reproducible_kernels():  # one seed, one set of images, on a GPU too
            return self.sampler.generate(self.model, n, steps=steps, keep_every=keep_every,
                                         generator=generator, device=self.device)

    def score(self, images: torch.Tensor, kind: str | None = None, seed: int = 0) -> torch.Tensor:
        """One score per image of ``images`` (N, C, H, W in [-1, 1]): how typical of its training data the model
        finds it, higher = more typical; ``kind`` picks one of the recipe's scores (default: its first)."""
        from genframe.scoring import score_images

        return score_images(self, images, kind, seed)

    def inpaint(self, images: torch.Tensor, known: torch.Tensor, steps: int | None = None, seed: int = 0,
                match: int = 10000) -> torch.Tensor:
        """``images`` with the pixels where ``known`` (a boolean tensor broadcasting to them, e.g. (1, 1, H, W)
        from :func:`genframe.masks.known_pixels`) is False completed by the model: started from the mean of the
        closest of ``match`` fresh samples on the known pixels (0: from the sampler's noise), then ``steps``
        sampler steps (default 3 after a match, else the recipe's generation steps)."""
        from genframe.completion import inpaint_images, match_pool

        pool = match_pool(self, match, seed) if match else None
        return inpaint_images(self, images, known, steps, seed, pool=pool)

    def denoise(self, images: torch.Tensor, steps: int | None = None, seed: int = 0) -> torch.Tensor:
        """``images`` moved by the model's sampler towards what the model makes: noise taken away."""
        from genframe.completion import denoise_images

        return denoise_images(self, images, steps, seed)


def load(path: str | Path, device: str = "auto") -> LoadedModel:
    """Load a run directory (its last checkpoint) or a checkpoint file for sampling.

    The model is the one the run samples with: when a callback supplied other weights (averaged
    ones, a mixture of snapshots), the run's callbacks are built again from its config to hold them.
    """
    from genframe.export import is_export

    if is_export(path):
        return _load_export(Path(path), device)
    checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    recipe = get_recipe(state["recipe"])
    state = recipe.config_class.upgrade_checkpoint(state)
    config = build_config(recipe.config_class, data=state["config"])
    torch_device = resolve_device(device)
    model = recipe.build_model(config)
    model.load_state_dict(state["model"])
    if "sampling_model" in state:
        run = RunContext(run_dir_of(checkpoint), state["recipe"], config, torch_device, 1, state["loop"]["step"],
                         model=model, recipe=recipe, registry=get_host().registry)
        model = CallbackList(chosen_callbacks(config, get_host().registry), run).sampling_model()
        if model is None:
            raise CheckpointError(f"{checkpoint} holds sampling weights but none of its config's callbacks "
                                  "supplies a sampling model; is the plugin that registered it installed?")
        model.load_state_dict(state["sampling_model"])
    model.to(torch_device).eval()
    provenance = {"plugin": state.get("plugin"), "plugin_version": state.get("plugin_version"),
                  "genframe_version": state.get("genframe_version"),
                  "train_seconds": state["loop"].get("train_seconds", 0.0),
                  "weights": "sampling_model" if "sampling_model" in state else "model"}
    return LoadedModel(state["recipe"], config, model, recipe.build_sampler(config), torch_device,
                       checkpoint, state["loop"]["step"], state["loop"]["epoch"], dict(state.get("extra", {})),
                       provenance=provenance)


def _load_export(folder: Path, device: str) -> LoadedModel:
    """A folder written by ``genframe export``: safetensors weights, JSON config and record, no pickle."""
    from genframe.export import WEIGHTS_NAME, read_export

    record, data, weights = read_export(folder)
    recipe = get_recipe(record["recipe"])
    config = build_config(recipe.config_class, data=data)
    torch_device = resolve_device(device)
    model = recipe.build_model(config)
    if record["weights"] == "sampling_model":  # a callback's weights: its own module holds them, as in load()
        run = RunContext(folder, record["recipe"], config, torch_device, 1, record["step"], model=model,
                         recipe=recipe, registry=get_host().registry)
        model = CallbackList(chosen_callbacks(config, get_host().registry), run).sampling_model()
        if model is None:
            raise CheckpointError(f"{folder} holds sampling weights but none of its config's callbacks supplies a "
                                  "sampling model; is the plugin that registered it installed?")
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{folder}/{WEIGHTS_NAME} does not fit the {record['recipe']} model of its config.json "
                              f"({one_line(exc)[:200]})") from None
    model.to(torch_device).eval()
    provenance = {key: record.get(key) for key in ("plugin", "plugin_version", "genframe_version", "weights")}
    return LoadedModel(record["recipe"], config, model, recipe.build_sampler(config), torch_device,
                       folder / WEIGHTS_NAME, record["step"], record.get("epoch", 0), exported=True,
                       provenance={**provenance, "train_seconds": 60 * (record.get("train_minutes") or 0.0)})


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
    so a file name would bring back the memory growth (2.7 GB at 300,000 samples) this removes.

    Every output path is checked before the model is loaded: a missing or unwritable folder is a
    :class:`RunError`, not a failure after all the sampling.
    """
    from genframe.generation import NpyWriter, iter_chunks

    check_output_paths({"--out": out, "--gif": gif, "--tensor": tensor})
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
        atomic_write(tensor, stream)
    else:
        stream(None)
    recipe.draw_samples(kept.images, Path(out))
    if gif:
        recipe.draw_chain(kept.chain or [kept.images], Path(gif))
    return kept


def _stream_chunks(chunks: Iterator[SampleOutput], writer: NpyWriter | None, grid_n: int,
                   progress: Callable[[int], None] | None) -> SampleOutput:
    """Write each chunk to ``writer`` (if any) and drop it, keeping only the first ``grid_n`` samples
    and the first chunk's chain; returns what was kept."""
    shown: list[torch.Tensor] = []
    chain: list[torch.Tensor] = []
    count = 0
    for output in chunks:
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
    return SampleOutput(torch.cat(shown), chain)


def check_output_paths(paths: dict[str, str | Path | None]) -> None:
    """Refuse, in one line, an output that could not be written: a folder given as the file, a folder
    that is missing, not a folder or not writable (tried with an unnamed temporary file, which is
    right for root and read-only file systems alike), or a tensor file not named ``.npy``."""
    for option, value in paths.items():
        if value is None:
            continue
        path = Path(value)
        if option == "--tensor" and path.suffix.lower() != ".npy":
            why = " (torch.save would hold every sample in memory at once)" if path.suffix in (".pt", ".pth") else ""
            raise RunError(f"--tensor {path}: the tensor file is a NumPy .npy, written as the samples are made{why}; "
                           f"name it {path.with_suffix('.npy').name}")
        folder = path.parent
        if path.is_dir():
            raise RunError(f"cannot write {path} ({option}): it is a folder; give a file name")
        if not folder.exists():
            raise RunError(f"cannot write {path} ({option}): folder {folder} does not exist; create it first")
        if not folder.is_dir():
            raise RunError(f"cannot write {path} ({option}): {folder} is not a folder")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise RunError(f"cannot write {path} ({option}): folder {folder} is not writable "
                           f"({error.strerror or error})") from None
