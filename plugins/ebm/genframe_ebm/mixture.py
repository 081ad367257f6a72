"""A mixture of recent snapshots of the energy net, to sample and evaluate with (the ``snapshot_mixture`` callback).

Why: a short-run model's 30-step chains are tuned so finely to the weights that the class balance of
its samples changes from one epoch to the next (in a fast-recipe run the fd of snapshots an epoch apart
rose and fell several-fold; the figures are in research/reports/fast-recipe.md), while a moving average
of the weights samples badly, because the sampler is tuned to the weights themselves, not to their
average. A mixture keeps each snapshot with its own sampler: the chains are split into K contiguous,
nearly equal parts, part ``j`` following member ``j``, so the samples are an equal mixture of the K
members' samples and their class balances average out.

The members are the last K - 1 snapshots, taken every ``callbacks.snapshot_mixture.every`` steps, and the trained
net itself (the last member, shared, not copied). Before the first snapshots exist, the earlier members
hold the starting weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class SnapshotMixture(nn.Module):
    """K energy nets; a batch is split into K nearly equal contiguous parts, part j scored by member j."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    @classmethod
    def around(cls, model: nn.Module, size: int) -> SnapshotMixture:
        """A mixture of ``size`` members whose last is ``model`` and the others copies of its weights."""
        return cls([*(copy.deepcopy(model).requires_grad_(False) for _ in range(size - 1)), model])

    def restart(self) -> None:
        """Every snapshot back to the trained net's present weights."""
        for member in self.members[:-1]:
            member.load_state_dict(self.members[-1].state_dict())

    def snapshot(self) -> None:
        """Drop the oldest snapshot and keep the trained net's present weights as the newest."""
        for older, newer in zip(self.members[:-1], self.members[1:]):  # oldest first: each takes the next's
            older.load_state_dict(newer.state_dict())

    def snapshots_state(self) -> list[dict[str, torch.Tensor]]:
        """The snapshots' weights (not the trained net's, which the checkpoint holds anyway)."""
        return [member.state_dict() for member in self.members[:-1]]

    def load_snapshots_state(self, states: list[dict[str, torch.Tensor]]) -> None:
        for member, state in zip(self.members[:-1], states):
            member.load_state_dict(state)

    def parts(self, n: int) -> list[int]:
        """How many of ``n`` chains each member runs: K nearly equal contiguous parts."""
        return [len(part) for part in torch.arange(n).tensor_split(len(self.members))]

    def chain_members(self, n: int) -> list[tuple[nn.Module, int]]:
        """How a sampler splits ``n`` chains: (member, count) pairs, in order (the sampler's protocol for
        models made of parts, so it need not know this class)."""
        return list(zip(self.members, self.parts(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = x.split(self.parts(x.shape[0]))
        return torch.cat([member(piece) for member, piece in zip(self.members, pieces) if piece.shape[0]])
