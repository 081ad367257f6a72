"""What the machine offers a run: where genframe keeps what it derives from data, and free memory."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def genframe_cache() -> Path:
    """Where genframe keeps what it derives from data: ``$GENFRAME_CACHE_DIR``, else ``~/.cache/genframe``."""
    return Path(os.environ.get("GENFRAME_CACHE_DIR") or Path.home() / ".cache" / "genframe")


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a run on ``device``: the GPU's free memory, or the machine's available RAM
    (``MemAvailable`` on Linux); None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
