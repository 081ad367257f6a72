"""The flow plugin's hook implementation: registers the ``flow`` recipe and its U-Net.

Components are registered by ``"module:Class"`` reference and imported when a run uses them, so
``genframe plugins`` and ``genframe config show flow`` import no torch.
"""

from __future__ import annotations

from genframe import hookimpl
from genframe_flow.recipe import FlowRecipe


@hookimpl
def genframe_register(registry) -> None:
    registry.add("recipe", FlowRecipe.name, FlowRecipe(registry))
    registry.add("model", "unet", "genframe_flow.unet:UNet")
