"""Recipes by name and their validated configs: what ``genframe config show`` and every run start from.

Kept apart from :mod:`genframe.using.load` because it needs no torch: printing a recipe's config is instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from genframe.config.callbacks import chosen_callbacks
from genframe.config.sections import RecipeConfig, build_config
from genframe.contracts.components import Recipe
from genframe.plugins.host import get_host


def get_recipe(name: str) -> Recipe:
    """The registered recipe ``name`` (clear error listing known recipes otherwise)."""
    return get_host().entry("recipe", name).obj


def recipe_config(
    name: str, config: Mapping[str, Any] | str | Path | None = None, overrides: Iterable[str] = ()
) -> RecipeConfig:
    """The validated config of recipe ``name``: defaults, then a dict or file, then overrides."""
    config_class = get_recipe(name).config_class
    if config is None or isinstance(config, Mapping):
        resolved = build_config(config_class, data=config, overrides=overrides)
    else:
        resolved = build_config(config_class, path=config, overrides=overrides)
    chosen_callbacks(resolved, get_host().registry)  # their settings checked and filled in
    return resolved
