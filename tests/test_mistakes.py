"""Mistakes that speak: plugin code genframe would never call is named when a run starts, with what was meant.

A callback or logger method that looks like a misspelled point gets a did-you-mean warning pointing at its
own line; a trainer or recipe method of genframe 0.1's contract that nothing calls any more (``distribute``,
``is_settled``, ``build_sampling_model``...) gets a deprecation warning naming its replacement.
"""

from __future__ import annotations

import inspect
import warnings

import genframe
from genframe.contracts.mistakes import ContractWarning
from genframe.plugins.host import get_host
from genframe.util.deprecation import GenframeDeprecationWarning

TINY = ["trainer.device=cpu", "trainer.max_steps=2", "trainer.batch_size=16", "data.limit=64", "sampler.steps=2",
        "sampler.generate_steps=2", "buffer.size=32", "logging.sample_n=0", "logging.chain_n=0", "logging.log_every=1",
        'logging.loggers=["misspelt"]']


class EarlyStop(genframe.Callback):
    """Meant to hear evaluations; one letter is missing, so genframe would never call it."""

    name = "early_stop"

    def on_evaluaton(self, run, control, metrics):
        control.stop("never")


class Tally(genframe.Logger):
    def __init__(self, run):
        self.steps = []

    def on_lg(self, run, control, metrics, images):  # meant: on_log
        self.steps.append(run.step)

    def on_plateau(self, run, control):  # no point looks like it: the author's own method, left alone
        pass


def old_recipe():
    """The ebm recipe with a trainer still written against genframe 0.1 (``distribute`` for torchrun)."""
    ebm = type(get_host().registry.get("recipe", "ebm"))

    class OldRecipe(ebm):
        name = "old_ebm"

        def build_trainer(self, config, model, sampler, device):
            base = type(super().build_trainer(config, model, sampler, device))

            class OldTrainer(base):
                def distribute(self, rank, world_size):
                    self.reseed(rank)

            return OldTrainer(model, sampler, config, device, seed=config.seed)

        def build_sampling_model(self, config):
            return self.build_model(config)

    return OldRecipe(get_host().registry)


def test_misspelled_points_and_retired_methods_are_named_when_the_run_starts(tmp_path, data_dir):
    registry = get_host().registry
    with registry.registering("mine"):
        registry.add("callback", "early_stop", EarlyStop)
        registry.add("logger", "misspelt", Tally)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        genframe.train("ebm", overrides=[*TINY, 'callbacks.use=["early_stop"]'], run_dir=tmp_path / "run", quiet=True)
    said = {str(w.message): w for w in caught if issubclass(w.category, ContractWarning)}
    line = inspect.getsourcelines(EarlyStop.on_evaluaton)[1]
    meant = ("genframe: callback EarlyStop defines on_evaluaton, which genframe never calls; did you mean "
             "on_evaluation? (the points: docs/writing-plugins.md)")
    assert meant in said and said[meant].filename == __file__ and said[meant].lineno == line
    assert any("logger Tally defines on_lg, which genframe never calls; did you mean on_log?" in text
               for text in said)
    assert not any("on_plateau" in text for text in said)

    with registry.registering("old"):
        registry.add("recipe", "old_ebm", old_recipe())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        genframe.train("old_ebm", overrides=[*TINY[:-1]], run_dir=tmp_path / "old", quiet=True)
    retired = [str(w.message) for w in caught if issubclass(w.category, GenframeDeprecationWarning)]
    assert any("Trainer.distribute (old_recipe.<locals>.OldRecipe.build_trainer.<locals>.OldTrainer) is no longer "
               "called since genframe 0.2: override reseed(seed) instead" in text for text in retired), retired
    assert any("Recipe.build_sampling_model" in text and "a callback's sampling_model()" in text for text in retired)
