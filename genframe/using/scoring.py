"""Scoring inputs with a trained model, and telling the training data from other data by the score:
``genframe score``, ``genframe ood``, ``LoadedModel.score``.

A recipe offers scores through :meth:`Recipe.score_functions` (higher = more typical of its training
data); the core knows nothing of how a score is made. Inputs are read chunk by chunk
(:mod:`genframe.using.inputs`), so memory holds one chunk of images and one float per image.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from genframe.contracts.components import ScoreFunction
from genframe.contracts.errors import RunError
from genframe.plugins.recipes import get_recipe
from genframe.training.runsetup import drawn_generator
from genframe.using.inputs import ImageSet, parse_inputs
from genframe.util.reproducible import reproducible_kernels

CHUNK = 500
DEFAULT_OUT_SETS = ("noise", "gaussian", "constant", "flipped", "inverted")


def score_function(loaded, name: str | None = None) -> tuple[str, ScoreFunction]:
    """The recipe's score called ``name`` (default: its first), or one line saying what it offers."""
    scores = get_recipe(loaded.recipe_name).score_functions(loaded.config)
    if not scores:
        raise RunError(f"recipe {loaded.recipe_name!r} offers no score (Recipe.score_functions), so its models "
                       f"cannot score inputs; genframe score and genframe ood need a recipe that does, such as ebm")
    if name is None:
        return next(iter(scores.items()))
    if name not in scores:
        raise RunError(f"recipe {loaded.recipe_name!r} has no score {name!r}; its scores: {', '.join(scores)}")
    return name, scores[name]


def score_images(loaded, images: torch.Tensor, kind: str | ScoreFunction | None = None, seed: int = 0,
                 stream: tuple[int, ...] = ()) -> torch.Tensor:
    """One score per image (higher = more typical), on the CPU; ``images`` shaped like the model's examples.
    ``kind``: a score's name (default: the recipe's first) or the function :func:`score_function` gave."""
    function = kind if callable(kind) else score_function(loaded, kind)[1]
    generator = drawn_generator(seed, "score", *stream, device=loaded.device)
    with reproducible_kernels():
        scores = function(loaded.model, loaded.sampler, images.to(loaded.device), generator)
    return scores.detach().float().cpu()


def example_shape(loaded) -> tuple[int, ...]:
    """The shape of the model's examples, as its sampler makes them."""
    return tuple(loaded.sampler.init_state(1, device="cpu").shape[1:])


def read_sets(loaded, specs: list[str], n: int | None, seed: int) -> list[ImageSet]:
    from genframe.plugins.host import get_host

    return parse_inputs(specs, example_shape(loaded), loaded.config.data, get_host().registry, n, seed)


def score_sets(loaded, sets: list[ImageSet], kind: str | None, seed: int,
               progress: Callable[[int], None] | None = None,
               rows: Callable[[str, int, torch.Tensor], None] | None = None) -> dict[str, torch.Tensor]:
    """Every set's scores, chunk by chunk; ``rows(set_name, first_index, scores)`` sees each chunk's."""
    _, function = score_function(loaded, kind)  # looked up once, not per chunk
    out: dict[str, torch.Tensor] = {}
    for set_index, images in enumerate(sets):
        name = images.name if images.name not in out else f"{images.name} ({set_index + 1})"
        parts, done = [], 0
        for chunk_index, (batch, _) in enumerate(images.chunks(CHUNK)):
            scores = score_images(loaded, batch, function, seed, stream=(set_index, chunk_index))
            if not torch.isfinite(scores).all():
                raise RunError(f"the model scored {int((~torch.isfinite(scores)).sum())} images of {images.name} as "
                               f"NaN or infinite; the model has diverged: score an earlier checkpoint")
            if rows is not None:
                rows(name, done, scores)
            parts.append(scores)
            done += len(scores)
            if progress is not None:
                progress(len(scores))
        out[name] = torch.cat(parts) if parts else torch.empty(0)
    return out


def summary(scores: torch.Tensor) -> dict[str, float]:
    values = scores.double()
    return {"n": len(values), "mean": float(values.mean()), "std": float(values.std()) if len(values) > 1 else 0.0,
            "min": float(values.min()), "median": float(values.median()), "max": float(values.max())}






def metric_name(name: str) -> str:
    """A set's name as one part of a metric key every logger accepts (MLflow takes letters, digits and _-./ only,
    and refuses keys that are not normalised paths: a set named by a path keeps no slash)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")






