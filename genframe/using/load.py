"""Python API beyond training: recipe configs, loading a trained model, sampling to files.

The CLI calls these same functions; from another project::

    import genframe
    result = genframe.train("ebm", {"trainer": {"max_steps": 20}})
    model = genframe.load(result.run_dir)
    images = model.sample(16, steps=200).images
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from genframe.config.callbacks import chosen_callbacks
from genframe.config.sections import RecipeConfig, build_config
from genframe.contracts.components import SampleOutput, Sampler
from genframe.contracts.context import RunContext
from genframe.contracts.errors import CheckpointError
from genframe.plugins.host import get_host
from genframe.plugins.recipes import get_recipe
from genframe.plugins.registry import Choices, Registry, follow_run
from genframe.training.checkpoint import load_checkpoint, resolve_checkpoint, run_dir_of
from genframe.training.listeners import Listeners
from genframe.training.runsetup import resolve_device, seeded_generator
from genframe.util.reproducible import reproducible_kernels
from genframe.util.text import one_line


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
    #: which plugin's component each of the run's bare names was: followed by what this model does
    choices: Choices = field(default_factory=Choices)

    def sample(self, n: int = 64, steps: int | None = None, keep_every: int | None = None, seed: int = 0) -> SampleOutput:
        """``n`` fresh samples with the recipe's generation settings (``steps`` overrides them)."""
        generator = seeded_generator(seed, 0, self.device)
        with reproducible_kernels():  # one seed, one set of images, on a GPU too
            return self.sampler.generate(self.model, n, steps=steps, keep_every=keep_every,
                                         generator=generator, device=self.device)

    def score(self, images: torch.Tensor, kind: str | None = None, seed: int = 0) -> torch.Tensor:
        """One score per image of ``images`` (N, C, H, W in [-1, 1]): how typical of its training data the model
        finds it, higher = more typical; ``kind`` picks one of the recipe's scores (default: its first)."""
        from genframe.using.scoring import score_images

        with Registry.choosing(self.choices):
            return score_images(self, images, kind, seed)

    def inpaint(self, images: torch.Tensor, known: torch.Tensor, steps: int | None = None, seed: int = 0,
                match: int = 10000) -> torch.Tensor:
        """``images`` with the pixels where ``known`` (a boolean tensor broadcasting to them, e.g. (1, 1, H, W)
        from :func:`genframe.using.masks.known_pixels`) is False completed by the model: started from the mean of the
        closest of ``match`` fresh samples on the known pixels (0: from the sampler's noise), then ``steps``
        sampler steps (default 3 after a match, else the recipe's generation steps)."""
        from genframe.using.completion import inpaint_images, match_pool

        with Registry.choosing(self.choices):
            pool = match_pool(self, match, seed) if match and not self.sampler.completes_from_noise else None
            return inpaint_images(self, images, known, steps, seed, pool=pool)

    def denoise(self, images: torch.Tensor, steps: int | None = None, seed: int = 0) -> torch.Tensor:
        """``images`` moved by the model's sampler towards what the model makes: noise taken away."""
        from genframe.using.completion import denoise_images

        with Registry.choosing(self.choices):
            return denoise_images(self, images, steps, seed)


def load(path: str | Path, device: str = "auto") -> LoadedModel:
    """Load a run directory (its last checkpoint) or a checkpoint file for sampling.

    The model is the one the run samples with: when a callback supplied other weights (averaged
    ones, a mixture of snapshots), the run's callbacks are built again from its config to hold them.
    """
    from genframe.using.exported import is_export

    if is_export(path):
        return _load_export(Path(path), device)
    checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    chosen = state.get("extra", {}).get("sample_with", {}).get("weights")
    best = checkpoint.with_name("best.pt")  # keep_best's BEST_NAME (a callback: above this room)
    if chosen == "best.pt" and Path(path).is_dir() and best.is_file():  # the run's end chose its best evaluation
        checkpoint, state = best, load_checkpoint(best)
    elif chosen == "model":  # the run's end found the trained net alone better than its averaged or mixed weights
        state = {k: v for k, v in state.items() if k != "sampling_model"}
    choices = follow_run(state)
    with Registry.choosing(choices):  # the plugins the run used, where two offer a name now
        loaded = _load_checkpoint_state(checkpoint, state, device)
    loaded.choices = choices
    return loaded


def _load_checkpoint_state(checkpoint: Path, state: dict[str, Any], device: str) -> LoadedModel:
    recipe = get_recipe(state["recipe"])
    config = build_config(recipe.config_class, data=state["config"])
    torch_device = resolve_device(device)
    model = recipe.build_model(config)
    model.load_state_dict(state["model"])
    if "sampling_model" in state:
        run = RunContext(run_dir_of(checkpoint), state["recipe"], config, torch_device, 1, state["loop"]["step"],
                         model=model, recipe=recipe, registry=get_host().registry)
        model = Listeners(chosen_callbacks(config, get_host().registry), run).sampling_model()
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
    from genframe.using.exported import read_export

    record, data, weights = read_export(folder)
    choices = follow_run(record)
    with Registry.choosing(choices):
        loaded = _load_export_record(folder, record, data, weights, device)
    loaded.choices = choices
    return loaded


def _load_export_record(folder: Path, record: dict[str, Any], data: dict[str, Any], weights: dict[str, Any],
                        device: str) -> LoadedModel:
    from genframe.using.exported import WEIGHTS_NAME

    recipe = get_recipe(record["recipe"])
    config = build_config(recipe.config_class, data=data)
    torch_device = resolve_device(device)
    model = recipe.build_model(config)
    if record["weights"] == "sampling_model":  # a callback's weights: its own module holds them, as in load()
        run = RunContext(folder, record["recipe"], config, torch_device, 1, record["step"], model=model,
                         recipe=recipe, registry=get_host().registry)
        model = Listeners(chosen_callbacks(config, get_host().registry), run).sampling_model()
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






