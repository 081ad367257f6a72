"""Resuming N processes' replay buffers on M processes (torchrun): the trainer pools them and splits the pool,
so every process holds chains of its own; 2 to 1, 1 to 2 and 2 to 3, counted chain by chain."""

from __future__ import annotations

import pytest
import torch

import genframe
from genframe.plugins.host import get_host


def trainers(n: int, size: int = 32):
    recipe = get_host().entry("recipe", "ebm").obj
    config = genframe.recipe_config("ebm", overrides=["trainer.batch_size=8", f"buffer.size={size}"])
    return [recipe.build_trainer(config, recipe.build_model(config), recipe.build_sampler(config), torch.device("cpu"))
            for _ in range(n)]


def saved(n: int, filled: int = 32) -> list[dict]:
    """The states of n processes whose buffers each hold ``filled`` chains of their own."""
    states = []
    for rank, trainer in enumerate(trainers(n)):
        trainer.buffer.push(torch.full((filled, 1, 32, 32), 0.0) + torch.arange(filled).view(-1, 1, 1, 1) / 100
                            + rank)  # chain k of process r: all pixels r + k / 100
        states.append(trainer.state_dict())
    return states


def chains_of(trainer) -> set[float]:
    return {round(float(x), 4) for x in trainer.buffer.oldest_first()[:, 0, 0, 0]}


@pytest.mark.parametrize(("before", "after"), [(2, 1), (1, 2), (2, 3)])
def test_every_process_holds_chains_of_its_own(before, after):
    states = saved(before)
    every = set().union(*(chains_of(t) for t in _loaded(states, before)))
    resumed = _loaded(states, after)
    held = [chains_of(t) for t in resumed]
    for a in range(after):
        for b in range(a + 1, after):
            assert not held[a] & held[b], (a, b)  # no chain on two processes
    assert set().union(*held) <= every and all(held)  # the saved chains, and each process has some
    if after < before:  # pooled: the one process holds chains of both saved processes, as many as it has room for
        assert {int(c) for c in held[0]} == set(range(before)) and len(held[0]) == resumed[0].buffer.capacity
    if after > before:  # split: together the processes still hold every saved chain
        assert set().union(*held) == every
    print(f"{before} -> {after} processes: {[len(h) for h in held]} chains each, {len(set().union(*held))} distinct, "
          f"of {len(every)} saved")  # shown with -s, for reports


def _loaded(states: list[dict], world_size: int):
    made = trainers(world_size)
    for rank, trainer in enumerate(made):
        own = states[rank] if len(states) == world_size else trainer.reshard_state(states, rank, world_size)
        trainer.load_state_dict(own)
    return made
