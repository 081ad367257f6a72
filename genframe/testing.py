"""The plugin conformance suite: contract tests any recipe runs against its own components.

A plugin's test suite subclasses :class:`RecipeContract`, names its recipe and gives settings small
enough to run in seconds; pytest then runs every ``test_*`` method below against that recipe::

    from genframe.testing import RecipeContract

    class TestMyRecipe(RecipeContract):
        recipe = "mymodel"
        overrides = ["trainer.batch_size=16", "data.limit=64", "logging.sample_n=4"]

The contract is what the core's loop, checkpoints and sampling commands rely on: the config
survives JSON and TOML, a train step moves the weights and returns finite scalars, the trainer's
state survives a checkpoint (weights-only load) and brings the same next step, validation leaves
training untouched, the sampler gives samples of the data's example shape (images, points, ...),
in range where the data is bounded, the recipe draws its samples and chains to files, and a run
stopped and resumed ends bit for bit where a straight run does. A check that cannot apply to a
recipe can be switched off in the subclass by overriding its method (e.g. with ``pytest.mark.skip``).

Only test code imports this module; it needs pytest (for ``tmp_path``) but nothing else beyond genframe.
"""

from __future__ import annotations

import functools
import io
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch

from genframe.config.sections import DataConfig, RecipeConfig, build_config, config_to_dict, validate_config
from genframe.contracts.components import Dataset, Recipe, SampleOutput, Sampler, Trainer
from genframe.plugins.host import get_host
from genframe.training.checkpoint import load_checkpoint
from genframe.training.preflight import check_model_fits_data
from genframe.training.run import train
from genframe.training.runsetup import build_dataset, training_data
from genframe.using.load import get_recipe
from genframe.util.tomlwrite import dumps as toml_dumps

# Settings every contract run shares (besides the device): no console output, no final GIF.
CONTRACT_SETTINGS = ('logging.loggers=["jsonl"]', "logging.chain_n=0")


def assert_states_equal(expected: Any, actual: Any, where: str = "state") -> None:
    """Nested dicts/lists of tensors and plain values are exactly equal; the message names the first difference."""
    if isinstance(expected, Mapping):
        assert isinstance(actual, Mapping), f"{where}: expected a mapping, got {type(actual).__name__}"
        assert set(expected) == set(actual), f"{where}: keys differ: {sorted(map(str, expected))} vs {sorted(map(str, actual))}"
        for key in expected:
            assert_states_equal(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert isinstance(actual, (list, tuple)) and len(expected) == len(actual), f"{where}: sequences differ in length"
        for index, (left, right) in enumerate(zip(expected, actual)):
            assert_states_equal(left, right, f"{where}[{index}]")
    elif torch.is_tensor(expected):
        assert torch.is_tensor(actual), f"{where}: expected a tensor, got {type(actual).__name__}"
        assert expected.shape == actual.shape and expected.dtype == actual.dtype, (
            f"{where}: {tuple(expected.shape)} {expected.dtype} vs {tuple(actual.shape)} {actual.dtype}")
        assert torch.equal(expected.cpu(), actual.cpu()), f"{where}: values differ"
    else:
        assert expected == actual, f"{where}: {expected!r} != {actual!r}"


def clone_state(state: Any) -> Any:
    """A deep copy of a state dict's tensors (state dicts often hand out live references)."""
    if isinstance(state, Mapping):
        return {key: clone_state(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(clone_state(value) for value in state)
    return state.detach().clone() if torch.is_tensor(state) else state


def weights_only_round_trip(state: Any) -> Any:
    """``state`` through ``torch.save`` and ``torch.load(weights_only=True)``, as every checkpoint goes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def is_finite_scalar(value: Any) -> bool:
    if torch.is_tensor(value):
        return value.numel() == 1 and bool(torch.isfinite(value).all())
    return isinstance(value, (int, float)) and math.isfinite(value)


@functools.lru_cache(maxsize=8)
def _cached_dataset(data_json: str, split: str) -> Dataset:
    # Datasets are read-only once built; caching saves reloading MNIST for every test of a class.
    return build_dataset(get_host().registry, DataConfig.model_validate_json(data_json), split)


class Parts(NamedTuple):
    """A recipe's components, built the way the core's training loop builds them."""

    model: torch.nn.Module
    sampler: Sampler
    trainer: Trainer


class RecipeContract:
    """Contract tests for one recipe; subclass it as ``Test<Something>`` and set the class attributes."""

    #: The recipe's registered name (what ``genframe run NAME`` takes).
    recipe: ClassVar[str] = ""
    #: ``section.key=value`` settings that make a run take seconds (small batches, few steps, data.limit).
    overrides: ClassVar[Sequence[str]] = ()
    #: The device to test on; CPU keeps every comparison bit-exact.
    device: ClassVar[str] = "cpu"
    #: Range every sample value must lie in (genframe's image convention); None: unbounded (e.g. points
    #: in the plane). A subclass that sets ``image_range``, the former name, is still honoured.
    sample_range: ClassVar[tuple[float, float] | None] = (-1.0, 1.0)
    #: Steps of the resume test: a run stopped after the first number and resumed to the second.
    resume_steps: ClassVar[tuple[int, int]] = (2, 4)

    # --- helpers a subclass may use in its own tests ---------------------------------------------
    def settings(self, *extra: str) -> list[str]:
        return [f"trainer.device={self.device}", *CONTRACT_SETTINGS, *self.overrides, *extra]

    def get_recipe(self) -> Recipe:
        return get_recipe(self.recipe)

    def make_config(self, *extra: str) -> RecipeConfig:
        return build_config(self.get_recipe().config_class, overrides=self.settings(*extra))

    def build(self, config: RecipeConfig | None = None) -> Parts:
        config = config or self.make_config()
        recipe, device = self.get_recipe(), torch.device(self.device)
        torch.manual_seed(config.seed)  # as the loop does before building the model
        model = recipe.build_model(config).to(device)
        sampler = recipe.build_sampler(config)
        self._trainer = recipe.build_trainer(config, model, sampler, device)
        return Parts(model, sampler, self._trainer)

    def dataset(self, config: RecipeConfig, split: str = "train") -> Dataset:
        return _cached_dataset(config.data.model_dump_json(), split).to(self.device)

    def batch(self, config: RecipeConfig, offset: int = 0) -> Any:
        """A training batch as the core hands it to ``train_step`` of the trainer :meth:`build` made last: with
        its labels for one that ``takes_labels``."""
        trainer = getattr(self, "_trainer", None) or self.build(config).trainer
        data = training_data(self.dataset(config), trainer, self.recipe, config.data.name)
        size = config.trainer.batch_size
        indices = (torch.arange(size) + offset * size) % len(data)
        return data.get_batch(indices.to(self.device))

    # --- the contract ------------------------------------------------------------------------
    def test_recipe_is_registered_with_a_valid_default_config(self):
        recipe = self.get_recipe()
        assert self.recipe, "set `recipe = \"NAME\"` on the RecipeContract subclass"
        assert isinstance(recipe, Recipe) and recipe.name == self.recipe, (
            f"registry entry {self.recipe!r} should be a genframe.Recipe whose name is {self.recipe!r}")
        assert issubclass(recipe.config_class, RecipeConfig), "config_class must subclass genframe.RecipeConfig"
        recipe.config_class()  # the defaults alone must validate: `genframe run NAME` with no config

    def test_config_round_trips_through_json_toml_and_schema(self):
        config = self.make_config()
        config_class = type(config)
        as_json = json.loads(json.dumps(config_to_dict(config)))  # what config.json and checkpoints store
        assert validate_config(config_class, as_json) == config, "config changed going through JSON"
        as_toml = tomllib.loads(toml_dumps(config_to_dict(config)))  # what `genframe config show` prints
        assert validate_config(config_class, as_toml) == config, "config changed going through TOML"
        schema = json.loads(json.dumps(config_class.model_json_schema()))  # `genframe config schema`
        assert {"seed", "data", "trainer", "logging"} <= set(schema["properties"])

    def test_train_step_changes_parameters_and_returns_finite_scalars(self):
        config = self.make_config()
        parts = self.build(config)
        before = [p.detach().clone() for p in parts.model.parameters()]
        metrics = parts.trainer.step(self.batch(config))
        assert isinstance(metrics, Mapping) and metrics, "train_step must return a non-empty dict of metrics"
        bad = sorted(name for name, value in metrics.items() if not is_finite_scalar(value))
        assert not bad, f"train_step metrics {bad} are not finite scalars"
        after = list(parts.model.parameters())
        assert any(not torch.equal(b, a) for b, a in zip(before, after)), (
            "train_step and apply_update left every parameter unchanged: does the trainer's optimizer hold model.parameters()?")
        assert all(bool(torch.isfinite(p).all()) for p in after), "train_step produced non-finite weights"

    def test_trainer_state_round_trips_and_gives_the_same_next_step(self):
        config = self.make_config()
        first = self.build(config)
        first.trainer.step(self.batch(config, 0))
        saved = weights_only_round_trip({"model": first.model.state_dict(), "trainer": first.trainer.state_dict()})
        second = self.build(config)
        second.model.load_state_dict(saved["model"])
        second.trainer.load_state_dict(saved["trainer"])
        assert_states_equal(clone_state(saved["trainer"]), second.trainer.state_dict(), "trainer.state_dict()")

        # Whatever the trainer draws next must come from its state (the core restores the global
        # RNG itself, so both sides start the step from the same global state).
        torch.manual_seed(config.seed + 1)
        expected = first.trainer.step(self.batch(config, 1))
        torch.manual_seed(config.seed + 1)
        actual = second.trainer.step(self.batch(config, 1))
        assert_states_equal({k: float(v) for k, v in expected.items()}, {k: float(v) for k, v in actual.items()},
                            "metrics of the step after load_state_dict")
        assert_states_equal(first.model.state_dict(), second.model.state_dict(), "model after the next step")

    def test_validate_reports_finite_metrics_and_leaves_training_untouched(self):
        config = self.make_config()
        parts = self.build(config)
        parts.trainer.step(self.batch(config))
        model_before = clone_state(parts.model.state_dict())
        trainer_before = clone_state(parts.trainer.state_dict())
        metrics = parts.trainer.validate(self.dataset(config, "test"))
        assert isinstance(metrics, Mapping) and metrics, "validate must return a non-empty dict of metrics"
        bad = sorted(name for name, value in metrics.items() if not is_finite_scalar(value))
        assert not bad, f"validate metrics {bad} are not finite numbers"
        assert_states_equal(model_before, parts.model.state_dict(), "model after validate")
        assert_states_equal(trainer_before, parts.trainer.state_dict(), "trainer.state_dict() after validate")

    def test_learning_rate_can_be_scaled_for_rollbacks(self):
        parts = self.build()
        rates = parts.trainer.scale_learning_rate(0.5)
        assert rates and all(isinstance(rate, float) and rate > 0 for rate in rates)
        work = parts.trainer.work_per_step(4)
        assert work is None or (isinstance(work[0], str) and work[1] >= 0), "work_per_step: None or (unit, amount)"

    def test_the_model_takes_what_model_inputs_gives(self):
        config = self.make_config()
        data = self.dataset(config)
        # the core's pre-run check: the model called as Recipe.model_inputs says, on two of the data's examples
        check_model_fits_data(self.get_recipe(), config, data.example_shape, config.data.name)

    def test_sampler_gives_samples_of_the_data_shape_in_range(self):
        config = self.make_config()
        parts = self.build(config)
        shape = (3, *self.dataset(config).example_shape)
        weights = clone_state(parts.model.state_dict())
        flags = [p.requires_grad for p in parts.model.parameters()]

        def draw(seed: int, keep_every: int | None = None) -> SampleOutput:
            generator = torch.Generator(device=self.device).manual_seed(seed)
            return parts.sampler.generate(parts.model, 3, keep_every=keep_every, generator=generator,
                                          device=self.device)

        output = draw(0)
        assert tuple(output.images.shape) == shape, f"samples have shape {tuple(output.images.shape)}, want {shape}"
        assert bool(torch.isfinite(output.images).all()), "samples are not finite"
        bounds = getattr(self, "image_range", self.sample_range)
        if bounds is not None:
            low, high = bounds
            assert low <= float(output.images.min()) and float(output.images.max()) <= high, (
                f"samples leave [{low}, {high}]: [{float(output.images.min())}, {float(output.images.max())}]")
        assert not output.images.requires_grad, "samples should be detached from the graph"
        assert torch.equal(draw(0).images, output.images), "the same generator seed must give the same samples"
        chained = draw(0, keep_every=1)
        assert all(tuple(state.shape) == shape for state in chained.chain), "chain states must be shaped like samples"
        if chained.chain:
            assert torch.equal(chained.chain[-1], chained.images), "the chain should end at the returned images"
        init = parts.sampler.init_state(3, device=self.device, generator=torch.Generator(self.device).manual_seed(1))
        alone = parts.sampler.sample(parts.model, init, steps=parts.sampler.generate_steps)  # usable on its own
        assert tuple(alone.images.shape) == shape
        assert_states_equal(weights, parts.model.state_dict(), "model after sampling")
        assert flags == [p.requires_grad for p in parts.model.parameters()], "sampling must restore requires_grad"

    def test_recipe_draws_its_samples_and_chains(self, tmp_path: Path):
        # Previews, `genframe sample --out/--gif` and the final GIF all go through these two methods.
        config = self.make_config()
        parts, recipe = self.build(config), self.get_recipe()
        generator = torch.Generator(device=self.device).manual_seed(0)
        output = parts.sampler.generate(parts.model, 4, keep_every=1, generator=generator, device=self.device)
        picture = recipe.draw_samples(output.images, tmp_path / "samples.png")
        assert Path(picture).is_file() and Path(picture).stat().st_size > 0, "draw_samples must write its picture"
        animation = recipe.draw_chain(output.chain or [output.images], tmp_path / "chain.gif")
        assert Path(animation).is_file() and Path(animation).stat().st_size > 0, "draw_chain must write its animation"

    def test_resume_equals_straight_run(self, tmp_path: Path):
        stop, end = self.resume_steps
        straight = train(self.recipe, overrides=self.settings(f"trainer.max_steps={end}"),
                         run_dir=tmp_path / "straight", quiet=True)
        train(self.recipe, overrides=self.settings(f"trainer.max_steps={stop}"), run_dir=tmp_path / "resumed",
              quiet=True)
        resumed = train(self.recipe, overrides=[f"trainer.max_steps={end}"], resume=tmp_path / "resumed", quiet=True)
        assert straight.step == resumed.step == end
        expected, actual = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
        for part in ("model", "trainer", "pending", "rng"):
            assert_states_equal(expected[part], actual[part], f"checkpoint[{part!r}] (straight vs resumed)")
        position = ("epoch", "batch", "step")  # the loop also keeps timings, which differ by nature
        assert_states_equal({k: expected["loop"][k] for k in position}, {k: actual["loop"][k] for k in position},
                            "checkpoint['loop'] (straight vs resumed)")
