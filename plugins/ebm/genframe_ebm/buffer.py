"""Replay buffer of Langevin chains: one preallocated tensor used as a ring, oldest out first.

Semantics of the reference: it starts with one batch of uniform noise; each draw restarts a share
of chains (each slot with probability ``fresh_prob``, so the count is Binomial(batch, 0.05)) from
uniform noise and continues the rest from stored samples chosen uniformly with replacement; the
results go in as the newest, and beyond ``capacity`` the oldest fall out. The per-slot coin flip
(instead of drawing the count first) keeps every shape fixed and needs no host sync on a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genframe import CheckpointError


class ReplayBuffer:
    def __init__(
        self,
        capacity: int,
        example_shape: Sequence[int],
        initial: int,
        fresh_prob: float = 0.05,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        self.capacity, self.fresh_prob = capacity, fresh_prob
        self.example_shape = tuple(example_shape)
        self.device, self.generator = torch.device(device), generator
        self.storage = torch.empty((capacity, *self.example_shape), device=self.device)
        self.size = 0  # stored samples (<= capacity)
        self.head = 0  # next slot to write: once full, the oldest sample
        self.push(self.uniform(initial))

    def __len__(self) -> int:
        return self.size

    def uniform(self, n: int) -> torch.Tensor:
        return torch.rand((n, *self.example_shape), generator=self.generator, device=self.device) * 2 - 1

    def draw(self, n: int) -> torch.Tensor:
        """Starting points for ``n`` chains: stored samples with replacement, some restarted from noise."""
        index = torch.randint(0, self.size, (n,), generator=self.generator, device=self.device)
        fresh = torch.rand((n,), generator=self.generator, device=self.device) < self.fresh_prob
        fresh = fresh.view(n, *([1] * len(self.example_shape)))
        return torch.where(fresh, self.uniform(n), self.storage[index])

    def push(self, samples: torch.Tensor) -> None:
        """Store ``samples`` as the newest entries, overwriting the oldest when full."""
        samples = samples.detach()[-self.capacity :]
        n = samples.shape[0]
        slots = (self.head + torch.arange(n, device=self.device)) % self.capacity
        self.storage[slots] = samples.to(self.storage.dtype)
        self.head = (self.head + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def oldest_first(self) -> torch.Tensor:
        """All stored samples from oldest to newest."""
        if self.size < self.capacity:
            return self.storage[: self.size]
        return torch.cat([self.storage[self.head :], self.storage[: self.head]])

    def newest(self, n: int) -> torch.Tensor:
        return self.oldest_first()[-n:]

    def state_dict(self) -> dict[str, Any]:
        return {"storage": self.storage[: self.size].clone(), "head": self.head, "size": self.size,
                "capacity": self.capacity}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        storage = state["storage"]
        if tuple(storage.shape[1:]) != self.example_shape:
            raise CheckpointError(f"replay buffer in checkpoint holds {tuple(storage.shape[1:])} samples, "
                                  f"the model expects {self.example_shape}")
        if state["capacity"] == self.capacity:  # exact ring layout: the same future draws
            self.storage[: state["size"]] = storage.to(self.device)
            self.head, self.size = state["head"], state["size"]
            return
        # A different capacity: keep the newest samples in age order.
        ordered = oldest_first(state)
        self.size = self.head = 0
        self.push(ordered.to(self.device))


def oldest_first(state: dict[str, Any]) -> torch.Tensor:
    """A saved buffer's samples (``ReplayBuffer.state_dict``), oldest first."""
    storage, head, size = state["storage"], state["head"], state["size"]
    return storage[:size] if size < state["capacity"] else torch.cat([storage[head:], storage[:head]])
