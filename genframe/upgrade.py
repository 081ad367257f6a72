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


def lookup(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """Whether dotted key ``dotted`` is set in ``data``, and its value."""
    *parents, leaf = dotted.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    return (isinstance(node, dict) and leaf in node), (node.get(leaf) if isinstance(node, dict) else None)


def pop_key(data: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """Remove dotted key ``dotted`` (and a section it leaves empty, which may no longer exist); returns
    whether it was there and its value."""
    present, value = lookup(data, dotted)
    if present:
        *parents, leaf = dotted.split(".")
        chain = [data]
        for part in parents:
            chain.append(chain[-1][part])
        del chain[-1][leaf]
        for parent, part, node in zip(reversed(chain[:-1]), reversed(parents), reversed(chain[1:])):
            if not node:
                del parent[part]
    return present, value


def move_key(data: dict[str, Any], old: str, new: str, moved: dict[str, str]) -> bool:
    """Move the value at dotted ``old`` to dotted ``new`` (unless ``new`` is set too); True if it was there."""
    present, value = pop_key(data, old)
    if not present:
        return False
    target = data
    *new_parents, new_leaf = new.split(".")
    for part in new_parents:
        target = target.setdefault(part, {})
    target.setdefault(new_leaf, value)
    if value is not None:  # a setting that was off says nothing worth a notice
        moved[old] = new
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
