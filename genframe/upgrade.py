"""Reading what older genframe wrote: settings whose keys moved and checkpoints of an older format.

Before the callback core (checkpoint format 1), the divergence policy lived in ``trainer.*``, the
evaluation schedule in ``eval.*``, and keep-best's record in the loop's state; they now belong to
the ``divergence_guard``, ``evaluation`` and ``keep_best`` callbacks. A recipe config moves its own
keys by overriding ``RecipeConfig.upgrade`` and ``RecipeConfig.upgrade_checkpoint``.
"""

from __future__ import annotations

from typing import Any

CORE_MOVES = {
    "trainer.on_divergence": "callbacks.divergence_guard.on_divergence",
    "trainer.max_rollbacks": "callbacks.divergence_guard.max_rollbacks",
    "trainer.out_of_rollbacks": "callbacks.divergence_guard.out_of_rollbacks",
    "trainer.rollback_lr_factor": "callbacks.divergence_guard.lr_factor",
    **{f"eval.{key}": f"callbacks.evaluation.{key}" for key in ("every_epochs", "every_minutes", "every_steps",
                                                                 "n", "steps")},
}


def move_key(data: dict[str, Any], old: str, new: str, moved: dict[str, str]) -> bool:
    """Move the value at dotted ``old`` to dotted ``new`` (unless ``new`` is set too); True if it was there."""
    *parents, leaf = old.split(".")
    node = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return False
    if not isinstance(node, dict) or leaf not in node:
        return False
    value = node.pop(leaf)
    target = data
    *new_parents, new_leaf = new.split(".")
    for part in new_parents:
        target = target.setdefault(part, {})
    target.setdefault(new_leaf, value)
    if value is not None:  # a setting that was off says nothing worth a notice
        moved[old] = new
    if not node and len(parents) == 1 and parents[0] == "eval":
        data.pop("eval", None)  # a section that moved away entirely
    return True


def use_callback(data: dict[str, Any], name: str) -> None:
    """Add ``name`` to ``callbacks.use`` (a moved setting that only mattered when the policy was on)."""
    use = data.setdefault("callbacks", {}).setdefault("use", [])
    if name not in use:
        use.append(name)


def upgrade_core_config(data: dict[str, Any], moved: dict[str, str]) -> dict[str, Any]:
    for old, new in CORE_MOVES.items():
        move_key(data, old, new, moved)
    return data


def upgrade_core_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """Format 1 -> 2: keep-best's record and the guard's forgiven rollbacks move to callback state."""
    loop, callbacks = state.setdefault("loop", {}), state.setdefault("callbacks", {})
    if "best_fd" in loop:
        callbacks["keep_best"] = {"best": loop.pop("best_fd"), "step": loop.pop("best_step", None)}
    if "rollbacks_forgiven" in loop:
        callbacks.setdefault("divergence_guard", {})["forgiven"] = loop.pop("rollbacks_forgiven")
    return state
