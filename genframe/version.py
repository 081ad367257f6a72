"""genframe's version, looked up in one place: the installed distribution's metadata."""

from __future__ import annotations

from functools import lru_cache
from importlib import metadata


@lru_cache(maxsize=1)
def genframe_version() -> str:
    try:
        return metadata.version("genframe")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
