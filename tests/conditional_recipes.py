"""Two small recipes of the shapes most families beside the EBM take, for the contract tests: a
flow-matching net of 2-D points called as ``model(x, t)`` (a time, as flow matching, diffusion and score
models take), and its class-conditional twin called as ``model(x, t, y)`` (a label per example).

Written as a plugin author would, against the public API only. Neither creates a folder it draws into:
the core makes every folder it hands a recipe.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import Field, PositiveInt

import genframe
from genframe import DataConfig, LoggingConfig, RecipeConfig, Section, TrainerConfig

CLASSES = 4


class Blobs(genframe.Dataset):
    """Four Gaussian blobs in the plane, labelled by blob; each split from its own seed."""

    name = "blobs"
    size: ClassVar[int] = 256  # points in each split

    def __init__(self, split: str = "train", root: str | None = None, download: bool = True) -> None:
        generator = torch.Generator().manual_seed({"train": 1, "test": 2}[split])
        self.labels = torch.randint(0, CLASSES, (self.size,), generator=generator)
        angles = self.labels.float() * (2 * math.pi / CLASSES)
        centres = 2 * torch.stack([angles.cos(), angles.sin()], dim=1)
        self.points = centres + 0.1 * torch.randn((self.size, 2), generator=generator)

    def __len__(self) -> int:
        return len(self.points)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        return self.points[indices]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return (2,)


class UnlabelledBlobs(Blobs):
    name = "unlabelled_blobs"

    def __init__(self, split: str = "train", root: str | None = None, download: bool = True) -> None:
        super().__init__(split, root, download)
        self.labels = None


class VelocityNet(torch.nn.Module):
    """v(x, t), or v(x, t, y) when ``classes`` is set: the velocity of the straight path from noise to data."""

    def __init__(self, hidden: int, classes: int = 0) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(classes, hidden) if classes else None
        self.inp = torch.nn.Linear(3, hidden)
        self.out = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                                       torch.nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.inp(torch.cat([x, t[:, None]], dim=1))
        if self.embed is not None:
            if y is None:
                raise TypeError("forward() missing 1 required positional argument: 'y'")
            h = h + self.embed(y)
        return self.out(h)


class EulerSampler(genframe.Sampler):
    """dx/dt = v(x, t) from t = 0 (noise) to 1 (data) in ``generate_steps`` Euler steps; labels drawn uniformly."""

    def __init__(self, steps: int, classes: int = 0) -> None:
        self.generate_steps, self.classes = steps, classes

    def init_state(self, n, device="cpu", generator=None):
        return torch.randn((n, 2), generator=generator, device=device)

    def sample(self, model, init, steps=None, keep_every=None, generator=None):
        steps = steps or self.generate_steps
        x, chain = init, [init]
        labels = (torch.randint(0, self.classes, (len(x),), generator=generator, device=x.device)
                  if self.classes else None)
        with torch.no_grad():
            for k in range(steps):
                t = torch.full((len(x),), k / steps, device=x.device)
                x = x + model(x, t, labels) / steps if labels is not None else x + model(x, t) / steps
                if keep_every and (k + 1) % keep_every == 0:
                    chain.append(x)
        return genframe.SampleOutput(x, chain if keep_every else [])


class FlowTrainer(genframe.Trainer):
    """Conditional flow matching: regress v(x_t, t) on x1 - x0 along x_t = (1 - t) x0 + t x1."""

    def __init__(self, model, config, device) -> None:
        self.model, self.device = model, device
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.trainer.lr)
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []  # (points, labels) of each labelled batch

    def _loss(self, x1, labels=None, generator=None):
        generator = generator or self.generator
        x0 = torch.randn(x1.shape, generator=generator, device=x1.device)
        t = torch.rand((len(x1),), generator=generator, device=x1.device)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        v = self.model(xt, t, labels) if labels is not None else self.model(xt, t)
        return ((v - (x1 - x0)) ** 2).mean()

    def train_step(self, batch):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(batch)
        loss.backward()
        return {"loss": loss.detach()}

    def validate(self, dataset):
        with torch.no_grad():
            return {"loss": float(self._loss(dataset.get_batch(torch.arange(len(dataset))), generator=self._fixed()))}

    def _fixed(self):  # validation draws from its own stream: training's is left where it was
        return torch.Generator(device=self.device).manual_seed(0)

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])

    def reseed(self, seed):
        self.generator.manual_seed(seed)


class LabelledFlowTrainer(FlowTrainer):
    """The class-conditional twin: the core hands ``train_step`` (examples, labels)."""

    takes_labels = True

    def train_step(self, batch):
        points, labels = batch
        self.seen.append((points, labels))
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(points, labels)
        loss.backward()
        return {"loss": loss.detach()}

    def validate(self, dataset):
        with torch.no_grad():
            everything = torch.arange(len(dataset))
            return {"loss": float(self._loss(dataset.get_batch(everything), dataset.labels[everything].to(self.device),
                                             generator=self._fixed()))}


class BlobsData(DataConfig):
    name: str = "blobs"


class Net(Section):
    hidden: PositiveInt = Field(32, description="Width of the velocity net.")


class Euler(Section):
    generate_steps: PositiveInt = Field(8, description="Euler steps from noise to data.")


class FlowTrainerConfig(TrainerConfig):
    batch_size: PositiveInt = 32
    lr: float = 1e-2


class Pictures(LoggingConfig):
    sample_n: int = 64
    chain_n: int = 0


class FlowConfig(RecipeConfig):
    data: BlobsData = BlobsData()
    model: Net = Net()
    sampler: Euler = Euler()
    trainer: FlowTrainerConfig = FlowTrainerConfig()
    logging: Pictures = Pictures()


def nearest_blob_distance(samples: torch.Tensor) -> dict[str, float]:
    """Mean distance of each sample to its nearest blob centre: 0.08 for data, about 2 for noise."""
    angles = torch.arange(CLASSES).float() * (2 * math.pi / CLASSES)
    centres = 2 * torch.stack([angles.cos(), angles.sin()], dim=1)
    return {"blob_distance": float(torch.cdist(samples.float().cpu(), centres).min(dim=1).values.mean())}


class FlowRecipe(genframe.Recipe):
    """Flow matching on 2-D points with a net called as model(x, t)."""

    name = "flow_points"
    config_class = FlowConfig
    classes: ClassVar[int] = 0

    def build_model(self, config):
        return VelocityNet(config.model.hidden, self.classes)

    def build_sampler(self, config):
        return EulerSampler(config.sampler.generate_steps, self.classes)

    def build_trainer(self, config, model, sampler, device):
        return FlowTrainer(model, config, device)

    def model_inputs(self, config, examples):
        return (examples, torch.zeros(len(examples), device=examples.device))

    def quality_metric(self, config, registry):
        return nearest_blob_distance

    def metric_goals(self):
        return {"blob_distance": "min"}

    def draw_samples(self, samples, path: Path) -> Path:
        path.write_bytes(samples.float().cpu().numpy().tobytes())  # raises if the folder is missing
        return path

    def draw_chain(self, chain, path: Path) -> Path:
        path.write_bytes(torch.stack(chain).float().cpu().numpy().tobytes())
        return path


class FlowRecipeWithoutInputs(FlowRecipe):
    """The same net, its recipe not saying how to call it: the pre-run check must point at model_inputs."""

    name = "flow_points_plain"
    model_inputs = genframe.Recipe.model_inputs  # the default: model(examples)


class LabelledFlowRecipe(FlowRecipe):
    """The class-conditional twin, called as model(x, t, y)."""

    name = "flow_points_labelled"
    classes = CLASSES

    def build_trainer(self, config, model, sampler, device):
        return LabelledFlowTrainer(model, config, device)

    def model_inputs(self, config, examples):
        n = len(examples)
        return (examples, torch.zeros(n, device=examples.device),
                torch.zeros(n, dtype=torch.long, device=examples.device))


def register(registry) -> None:
    """What the plugin's ``genframe_register`` would do."""
    with registry.registering("shapes"):
        registry.add("dataset", "blobs", Blobs)
        registry.add("dataset", "unlabelled_blobs", UnlabelledBlobs)
        for recipe in (FlowRecipe(), FlowRecipeWithoutInputs(), LabelledFlowRecipe()):
            registry.add("recipe", recipe.name, recipe)
