"""Which callbacks a config turns on: the recipe's defaults less ``callbacks.disable``, then ``callbacks.use``,
each with its settings validated (dotted-path errors) and written back into the config.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from genframe.config.sections import RecipeConfig, format_validation_error
from genframe.contracts.errors import ConfigError, UnknownComponentError
from genframe.contracts.listeners import Callback


def chosen_callbacks(config: RecipeConfig, registry: Any) -> list[tuple[str, type[Callback], Any]]:
    """(name, class, validated settings) of every callback the config turns on, in call order.

    Also writes each one's full settings back into ``config.callbacks``, so config.json and
    checkpoints hold every value used, defaults included.
    """
    section, defaults = config.callbacks, type(config).default_callbacks
    unknown = [name for name in section.disable if name not in defaults]
    if unknown:
        raise ConfigError(f"invalid config: callbacks.disable: {', '.join(map(repr, unknown))} is not a default "
                          f"callback of this recipe (its defaults: {', '.join(defaults) or 'none'})")
    names = turned_on(config)
    tables = dict(section.model_extra or {})
    idle = [name for name in tables if name not in names]
    if idle:
        raise ConfigError(f"invalid config: callbacks.{idle[0]}: settings for a callback that is not on; add "
                          f"{idle[0]!r} to callbacks.use (or remove it from callbacks.disable), or drop the table")
    chosen = []
    for name in names:
        try:
            cls = registry.get("callback", name)
        except UnknownComponentError as exc:
            raise ConfigError(f"invalid config: callbacks.use: {exc}") from None
        table = settings_table(config, name)
        if not isinstance(table, dict):
            raise ConfigError(f"invalid config: callbacks.{name}: should be a table of settings, got {table!r}")
        try:
            settings = cls.settings_class.model_validate(table)
        except ValidationError as exc:
            detail = format_validation_error(exc, cls.settings_class, prefix=("callbacks", name))
            raise ConfigError(f"invalid config: {detail}") from None
        twice = next((other for other, other_cls, _ in chosen if other_cls is cls), None)
        if twice is not None:  # e.g. a default `evaluation` and `genframe:evaluation` in callbacks.use
            raise ConfigError(f"invalid config: callbacks.use: {name!r} is the callback {twice!r} again, which is "
                              "on already; name each callback once")
        section.model_extra[name] = settings.model_dump(mode="json")
        chosen.append((name, cls, settings))
    for name, cls, settings in chosen:  # every table is resolved: a check may look at another callback's
        problem = cls.check_settings(settings, config)
        if problem:
            raise ConfigError(f"invalid config: callbacks.{name}: {problem}")
    suppliers = [name for name, cls, _ in chosen if cls.sampling_model is not Callback.sampling_model]
    if len(suppliers) > 1:  # only the first would be sampled: the others' weights kept for nothing
        raise ConfigError(f"invalid config: callbacks {' and '.join(map(repr, suppliers))} each supply the "
                          "weights to sample and evaluate with, and a run samples with one; choose one of them")
    return chosen


def turned_on(config: RecipeConfig) -> list[str]:
    """The callbacks ``config`` turns on, in call order: the recipe's defaults less ``callbacks.disable``,
    then ``callbacks.use``."""
    section, defaults = config.callbacks, type(config).default_callbacks
    return [n for n in defaults if n not in section.disable] + [n for n in section.use if n not in defaults]


def settings_table(config: RecipeConfig, name: str) -> Any:
    """Callback ``name``'s settings as given: the recipe's defaults under the user's table (the user's value
    as it is when it is not a table, for the caller to refuse)."""
    given = config.callbacks.table(name) or {}
    return {**type(config).callback_settings.get(name, {}), **given} if isinstance(given, dict) else given


def callback_settings(config: RecipeConfig, name: str) -> dict[str, Any] | None:
    """The settings callback ``name`` runs with when ``config`` turns it on, else None. For checks that must
    know a callback's plan, e.g. the memory an evaluation's samples take."""
    table = settings_table(config, name) if name in turned_on(config) else None
    return table if isinstance(table, dict) else None
