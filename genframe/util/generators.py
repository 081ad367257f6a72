"""A trainer's seeded generator put back from a checkpoint, also one saved on another kind of device.

A CUDA generator's state (its seed and offset) and a CPU generator's (a Mersenne Twister) are different
things, and neither loads into the other. A run trained on a GPU and resumed on a laptop's CPU (or back)
keeps its weights, optimizer and schedule exactly; only its draws cannot go on as they would have, so the
generator is seeded from the saved state instead (the same seed for the same checkpoint) and the user is
told the resume is not draw-for-draw exact.
"""

from __future__ import annotations

import hashlib
import warnings

import torch


def restore_generator(generator: torch.Generator, saved: torch.Tensor) -> bool:
    """Load ``saved`` into ``generator``; True when it went on exactly, False when ``saved`` came from another
    kind of device and the generator was seeded from it instead (with a warning)."""
    saved = saved.cpu()
    if saved.numel() == generator.get_state().numel():
        generator.set_state(saved)
        return True
    seed = int.from_bytes(hashlib.sha256(saved.numpy().tobytes()).digest()[:8], "little") >> 1
    generator.manual_seed(seed)
    warnings.warn(f"genframe: the checkpoint's random draws were made on another kind of device than this "
                  f"{generator.device.type}; they go on from a seed taken from them, so this resume is not "
                  "draw-for-draw exact (the weights, optimizer and schedule are)", stacklevel=2)
    return False
