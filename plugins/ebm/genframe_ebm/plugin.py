"""The ebm plugin's hook implementations: registers the ``ebm`` recipe and its components."""

from __future__ import annotations

from genframe import Recipe, hookimpl
from genframe_ebm.config import EBMConfig
from genframe_ebm.energy import SwishEnergyNet
from genframe_ebm.policies import SettleGate, SnapshotMixtureCallback
from genframe_ebm.sampler import SGLDSampler
from genframe_ebm.trainer import CDTrainer


class EBMRecipe(Recipe):
    """Energy-based model trained by contrastive divergence with SGLD and a replay buffer."""

    name = "ebm"
    description = "Energy-based model: Swish CNN score, SGLD sampling, replay buffer, contrastive divergence"
    config_class = EBMConfig

    def __init__(self, registry) -> None:
        self.registry = registry  # models are looked up by name, so a plugin can add an architecture

    def build_model(self, config: EBMConfig):
        return self.registry.get("model", config.model.name).from_config(config.model)

    def build_sampler(self, config: EBMConfig) -> SGLDSampler:
        shape = (config.model.in_channels, config.model.image_size, config.model.image_size)
        return SGLDSampler.from_config(config.sampler, shape)

    def build_trainer(self, config: EBMConfig, model, sampler, device) -> CDTrainer:
        return CDTrainer(model, sampler, config, device, seed=config.seed)


@hookimpl
def genframe_register(registry) -> None:
    registry.add("recipe", EBMRecipe.name, EBMRecipe(registry))
    registry.add("model", "swish_cnn", SwishEnergyNet)
    registry.add("callback", SettleGate.name, SettleGate)
    registry.add("callback", SnapshotMixtureCallback.name, SnapshotMixtureCallback)
