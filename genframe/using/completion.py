"""Completing images with some pixels hidden, and cleaning noisy ones: ``genframe inpaint``, ``genframe denoise``,
``LoadedModel.inpaint`` and ``LoadedModel.denoise``.

Both run the recipe's sampler on given images (:meth:`Sampler.refine`): completion holds the known pixels
fixed and starts the hidden ones from the sampler's starting state; denoising moves every pixel. Work goes
chunk by chunk; only the first images are kept, for the picture, and outputs are streamed to a ``.npy``.
Completions of labelled images are read by the dataset's quality classifier (the one ``genframe eval``
uses): how often they carry the original's label, beside the originals (the ceiling), the masked images
alone and completions of uniform noise (the floor).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from genframe.contracts.components import refines
from genframe.contracts.errors import RunError
from genframe.training.runsetup import drawn_generator
from genframe.util.reproducible import reproducible_kernels

MATCH_SAMPLES = 10000  # fresh samples a completion starts from the closest of (0: from the sampler's noise)
MATCH_NEIGHBOURS = 8  # the mean of this many closest: their majority shape completes more digits than the closest
MATCH_STEPS = 3  # sampler steps after a matched start: they blend the seam, more drift away
HIDDEN_SHOWN_AS = 0.0  # mid-grey in [-1, 1]: where the masked inputs in a picture are hidden


def _check_refines(loaded) -> None:
    if not refines(loaded.sampler):
        raise RunError(f"the sampler of recipe {loaded.recipe_name!r} ({type(loaded.sampler).__name__}) cannot hold "
                       f"pixels fixed or refine given images (Sampler.refine), so its models cannot complete or "
                       f"clean images; use a recipe whose sampler can, such as ebm")


def inpaint_images(loaded, images: torch.Tensor, known: torch.Tensor, steps: int | None = None, seed: int = 0,
                   stream: tuple[int, ...] = (), pool: torch.Tensor | None = None) -> torch.Tensor:
    """``images`` with the pixels where ``known`` is False completed by the model (on the CPU).

    With ``pool`` (the model's samples, :func:`match_pool`) the hidden pixels start from the mean of the
    closest samples on the known pixels and take ``steps`` (default 3) sampler steps; without, they start
    from the sampler's starting state and take its generation steps."""
    _check_refines(loaded)
    generator = drawn_generator(seed, "inpaint", *stream, device=loaded.device)
    with reproducible_kernels():
        if pool is None:
            start = loaded.sampler.init_state(images.shape[0], device=loaded.device, generator=generator)
        else:
            start, steps = matched_start(pool, images, known).to(loaded.device), MATCH_STEPS if steps is None else steps
        images, known = images.to(loaded.device), known.to(loaded.device)
        output = loaded.sampler.refine(loaded.model, torch.where(known, images, start), known, steps, generator)
    return output.detach().cpu()


def match_pool(loaded, count: int = MATCH_SAMPLES, seed: int = 0,
               progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """``count`` fresh samples of the model (on the CPU) for completions to start from."""
    from genframe.using.generation import generate_in_chunks

    return generate_in_chunks(loaded.sampler, loaded.model, count, None, seed, stream=17, device=loaded.device,
                              progress=progress).images


def matched_start(pool: torch.Tensor, images: torch.Tensor, known: torch.Tensor,
                  neighbours: int = MATCH_NEIGHBOURS) -> torch.Tensor:
    """For each image, the mean of the ``neighbours`` pool samples closest to it on its known pixels: a
    search of the model's samples for those that agree with what is known (why: the model's chains make
    clean samples from noise, but with half an image held fixed they often complete it with the wrong
    class, far more often than from this start; docs/using-the-energy.md has the accuracies)."""
    return closest_on_known(pool, images, known, neighbours).mean(0)


def closest_on_known(pool: torch.Tensor, images: torch.Tensor, known: torch.Tensor, k: int) -> torch.Tensor:
    """For each image, the ``k`` pool samples closest to it on its known pixels, closest first, shaped
    (k, n, C, H, W)."""
    weights = known.expand_as(images).float().flatten(1)
    flat, candidates = images.flatten(1).float(), pool.flatten(1).float()
    # |w * (x - p)|^2 over the known pixels, for every image and sample at once, as matrix products
    distance = (weights * flat ** 2).sum(1, keepdim=True) - 2 * (weights * flat) @ candidates.T \
        + weights @ (candidates ** 2).T
    return pool[distance.topk(min(k, len(pool)), dim=1, largest=False).indices.T]


def denoise_images(loaded, images: torch.Tensor, steps: int | None = None, seed: int = 0,
                   stream: tuple[int, ...] = ()) -> torch.Tensor:
    """``images`` moved by the model towards what it makes, every pixel free (on the CPU)."""
    _check_refines(loaded)
    generator = drawn_generator(seed, "denoise", *stream, device=loaded.device)
    with reproducible_kernels():
        output = loaded.sampler.refine(loaded.model, images.to(loaded.device), None, steps, generator)
    return output.detach().cpu()


def add_noise(images: torch.Tensor, std: float, seed: int, offset: int) -> torch.Tensor:
    """Gaussian noise of ``std`` (in the images' [-1, 1] units) added per image from its own stream, clipped."""
    noise = torch.stack([torch.randn(images.shape[1:], generator=drawn_generator(seed, "denoise noise", offset + i))
                         for i in range(images.shape[0])])
    return (images + std * noise).clamp(-1, 1)


def psnr(images: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio of each image against ``clean``, in dB, on the [0, 1] pixel scale."""
    mse = ((images - clean) / 2).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)






















