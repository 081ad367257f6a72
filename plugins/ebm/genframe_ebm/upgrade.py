"""Reading ebm runs written before the callback core: the collapse guard, settle gate, EMA and snapshot
mixture settings moved from ``trainer.*`` to their callbacks, and three options that measured worse
and no recipe used were removed (their findings: docs/reports/fast-recipe.md)."""

from __future__ import annotations

from typing import Any

from genframe.errors import ConfigError
from genframe.upgrade import lookup, move_key, pop_key, use_callback

MOVES = {
    "trainer.cdiv_limit": "callbacks.divergence_guard.limit",
    "trainer.cdiv_patience": "callbacks.divergence_guard.patience",
}
# old key -> (callback it turns on, its setting); a null (or 1-member mixture) meant "off"
OPT_IN = {
    "trainer.cdiv_settle": ("settle_gate", "settle"),
    "trainer.ema": ("ema", "decay"),
    "trainer.mixture": ("snapshot_mixture", "members"),
    "trainer.mixture_every": ("snapshot_mixture", "every"),
}
REMOVED = ("sampler.steps_min", "sampler.step_size_end", "trainer.r1_min")


def upgrade_config(data: dict[str, Any], moved: dict[str, str]) -> dict[str, Any]:
    for old in REMOVED:
        present, value = pop_key(data, old)
        if present and value is not None:
            raise ConfigError(f"invalid config: {old} was removed (it measured worse and no recipe used it: see "
                              f"docs/reports/fast-recipe.md); drop it (or --set {old}=null to resume an old run)")
    for old, new in MOVES.items():
        move_key(data, old, new, moved)
    mixture_on = (lookup(data, "trainer.mixture")[1] or 1) > 1
    for old, (callback, setting) in OPT_IN.items():
        _, value = lookup(data, old)
        if value is None or (callback == "snapshot_mixture" and not mixture_on):
            pop_key(data, old)  # the policy was off (or the key is not there)
        elif move_key(data, old, f"callbacks.{callback}.{setting}", moved):
            use_callback(data, callback)
    return data


def upgrade_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: the CD trainer's policy state moves to the callbacks that now hold it (rank 0's,
    which every process shared; ``trainer`` is often the very dict of ``trainer_ranks[0]``)."""
    trainer, callbacks = state.get("trainer", {}), state.setdefault("callbacks", {})
    callbacks.setdefault("divergence_guard", {})["streak"] = trainer.get("cdiv_streak", 0)
    callbacks["settle_gate"] = {"mean": trainer.get("cdiv_mean", 0.0)}
    if trainer.get("mixture") is not None:
        callbacks["snapshot_mixture"] = {"snapshots": trainer["mixture"]}
    if trainer.get("ema") is not None:
        callbacks["ema"] = {"average": trainer["ema"]}
    for own in [trainer, *state.get("trainer_ranks", [])]:
        for key in ("cdiv_streak", "cdiv_mean", "mixture", "ema"):
            own.pop(key, None)
    return state
