"""genframe-ebm: energy-based models (Swish CNN energy, SGLD sampling, replay buffer, CD training)."""

from importlib import metadata

import genframe

try:
    __version__ = metadata.version("genframe-ebm")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.1.0"

# The sampler's backends moved into genframe_ebm.backends in 0.2 (one interface, chosen once per model and
# device): their old paths keep working until 0.4, each with one deprecation warning.
genframe.moved_modules({
    "genframe_ebm.fastpath": "genframe_ebm.backends.threaded",
    "genframe_ebm.native": "genframe_ebm.backends.native",
    "genframe_ebm.native_src": "genframe_ebm.backends.native_src",
    "genframe_ebm.native_bf16_src": "genframe_ebm.backends.native_bf16_src",
    "genframe_ebm.cudagraph": "genframe_ebm.backends.cudagraph",
    "genframe_ebm.swish_plan": "genframe_ebm.backends.swish_plan",
    "genframe_ebm.calibrate": "genframe_ebm.backends.race",
}, since="0.2", until="0.4", current=__version__)
