"""The ebm plugin's hook implementation: registers the ``ebm`` recipe and its components.

Components are registered by ``"module:Class"`` reference and imported when a run uses them, so
``genframe plugins`` and ``genframe config show ebm`` import no torch.
"""

from __future__ import annotations

from genframe import hookimpl
from genframe_ebm.recipe import EBMRecipe


@hookimpl
def genframe_register(registry) -> None:
    registry.add("recipe", EBMRecipe.name, EBMRecipe(registry))
    registry.add("model", "swish_cnn", "genframe_ebm.energy:SwishEnergyNet")
    registry.add("callback", "settle_gate", "genframe_ebm.policies:SettleGate")
    registry.add("callback", "snapshot_mixture", "genframe_ebm.policies:SnapshotMixtureCallback")
