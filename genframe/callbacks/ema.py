"""EMA: sample and evaluate with an exponential moving average of the trained weights (opt-in)."""

from __future__ import annotations

from copy import deepcopy
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from genframe.contracts.context import RunContext
from genframe.contracts.listeners import Callback, Control

if TYPE_CHECKING:  # torch is imported when an average is made, not when configs are read
    from torch import nn


class EMASettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    decay: float = Field(0.999, gt=0, lt=1, description="average <- decay * average + (1 - decay) * weights, each step.")


def averaged_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the moving average of its weights."""
    copy = deepcopy(model)
    for parameter in copy.parameters():
        parameter.requires_grad_(False)
    return copy.eval()


def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model, parameter by parameter, in one fused call."""
    import torch

    with torch.no_grad():
        torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1.0 - decay)


class EMA(Callback):
    name = "ema"
    settings_class = EMASettings

    def __init__(self, settings: EMASettings, run: RunContext) -> None:
        super().__init__(settings, run)
        self.average = averaged_copy(run.model)

    def on_after_update(self, run: RunContext, control: Control, metrics: dict[str, Any]) -> None:
        update_average(self.average, run.model, self.settings.decay)

    def sampling_model(self) -> nn.Module:
        return self.average

    def state_dict(self) -> dict[str, Any]:
        return {"average": self.average.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # a run that turns the average on at resume starts it from the (restored) weights
        self.average.load_state_dict(state.get("average", self.run.model.state_dict()))
