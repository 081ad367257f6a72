"""Reading ebm runs written before the callback core: the collapse guard, settle gate, EMA and snapshot
mixture settings moved from ``trainer.*`` to their callbacks, and three options that measured worse
and no recipe used were removed (their findings: docs/reports/fast-recipe.md)."""

from __future__ import annotations

from typing import Any

from genframe.errors import ConfigError
from genframe.upgrade import move_key, use_callback

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


def _get(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    section, _, key = dotted.partition(".")
    node = data.get(section)
    return (isinstance(node, dict) and key in node), (node or {}).get(key) if isinstance(node, dict) else None


def _drop(data: dict[str, Any], dotted: str) -> None:
    section, _, key = dotted.partition(".")
    data[section].pop(key)


def upgrade_config(data: dict[str, Any], moved: dict[str, str]) -> dict[str, Any]:
    for old in REMOVED:
        present, value = _get(data, old)
        if present and value is not None:
            raise ConfigError(f"invalid config: {old} was removed (it measured worse and no recipe used it: see "
                              f"docs/reports/fast-recipe.md); drop it (or --set {old}=null to resume an old run)")
        if present:
            _drop(data, old)
    for old, new in MOVES.items():
        present, value = _get(data, old)
        if present and value is None:
            _drop(data, old)
        else:
            move_key(data, old, new, moved)
    mixture_on = (_get(data, "trainer.mixture")[1] or 1) > 1
    for old, (callback, setting) in OPT_IN.items():
        present, value = _get(data, old)
        if not present:
            continue
        if value is None or (callback == "snapshot_mixture" and not mixture_on):
            _drop(data, old)  # the policy was off
            continue
        move_key(data, old, f"callbacks.{callback}.{setting}", moved)
        use_callback(data, callback)
    return data


def upgrade_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: the CD trainer's policy state moves to the callbacks that now hold it."""
    trainer, callbacks = state.get("trainer", {}), state.setdefault("callbacks", {})
    for own in [trainer, *state.get("trainer_ranks", [])]:
        streak, mean = own.pop("cdiv_streak", 0), own.pop("cdiv_mean", 0.0)
        mixture, ema = own.pop("mixture", None), own.pop("ema", None)
        if own is not trainer:
            continue
        callbacks.setdefault("divergence_guard", {})["streak"] = streak
        callbacks["settle_gate"] = {"mean": mean}
        if mixture is not None:
            callbacks["snapshot_mixture"] = {"snapshots": mixture}
        if ema is not None:
            callbacks["ema"] = {"average": ema}
    return state
