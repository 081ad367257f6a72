"""The core's fixed batch sizes: what no setting sizes, shared by the code that draws and the check that
counts memory before a run (``genframe.training.preflight``)."""

EVAL_CHUNK = 500  # samples an evaluation draws at a time: fixed, so a figure does not depend on the device
GIF_FRAMES = 50  # about this many frames of the chains in a run's final GIF


def gif_keep_every(steps: int) -> int:
    """Keep every this-many-th state of ``steps`` sampler steps for the GIF."""
    return max(1, steps // GIF_FRAMES)


def gif_frames(steps: int) -> int:
    """States kept per chain for a GIF of ``steps`` sampler steps: the start and every kept step."""
    return steps // gif_keep_every(steps) + 1
