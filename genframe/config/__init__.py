"""Configuration: pydantic sections every recipe has, config files, ``--set`` overrides and
one-line dotted errors (``sections``); which callbacks a config turns on (``callbacks``).
"""

from genframe.util.lazy import names_from

# ``from genframe.config import RecipeConfig`` keeps working without importing pydantic for every submodule
__getattr__ = names_from("genframe.config.sections", __name__)
