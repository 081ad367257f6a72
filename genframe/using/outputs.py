"""Checking output paths before any work starts, so a long command never fails at its last write.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from genframe.contracts.errors import RunError


def check_output_paths(paths: dict[str, str | Path | None]) -> None:
    """Refuse, in one line, an output that could not be written: a folder given as the file, a folder
    that is missing, not a folder or not writable (tried with an unnamed temporary file, which is
    right for root and read-only file systems alike), or a tensor file not named ``.npy``."""
    for option, value in paths.items():
        if value is None:
            continue
        path = Path(value)
        if option == "--tensor" and path.suffix.lower() != ".npy":
            why = " (torch.save would hold every sample in memory at once)" if path.suffix in (".pt", ".pth") else ""
            raise RunError(f"--tensor {path}: the tensor file is a NumPy .npy, written as the samples are made{why}; "
                           f"name it {path.with_suffix('.npy').name}")
        folder = path.parent
        if path.is_dir():
            raise RunError(f"cannot write {path} ({option}): it is a folder; give a file name")
        if not folder.exists():
            raise RunError(f"cannot write {path} ({option}): folder {folder} does not exist; create it first")
        if not folder.is_dir():
            raise RunError(f"cannot write {path} ({option}): {folder} is not a folder")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise RunError(f"cannot write {path} ({option}): folder {folder} is not writable "
                           f"({error.strerror or error})") from None


def picture_name(option: str, path: str | Path | None, suffix: str) -> str | Path | None:
    """``path`` if it is named for the picture written there (``.png``, ``.gif``), else one line naming the fix:
    the bytes are that format whatever the name, and a ``.jpg`` holding PNG bytes misleads every viewer."""
    if path is not None and not Path(path).is_dir() and Path(path).suffix.lower() != suffix:  # (a folder: said next)
        raise RunError(f"{option} {path}: the picture is a {suffix[1:].upper()}; name it "
                       f"{Path(path).with_suffix(suffix).name}")
    return path
