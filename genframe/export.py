"""A trained model as a folder to share: ``genframe export RUN --out DIR``.

The folder holds what sampling and evaluating need, and nothing that runs code when loaded:

- ``model.safetensors``: the weights the run samples with (a callback's averaged or mixed weights
  when it supplies them, else the trained network), with the recipe's name in its metadata;
- ``config.json``: the run's resolved config; ``export.json``: what made it (recipe, plugin and
  versions, steps, training minutes, which weights these are);
- ``eval.json`` when the run was evaluated, ``samples.png`` (a grid drawn from the exported weights)
  and ``README.md``, a model card saying all of this and how to load it.

``genframe.load(DIR)``, ``genframe sample DIR`` and ``genframe eval DIR`` take the folder like a run
directory. It is laid out as the Hugging Face Hub expects a model repository (a README.md card at the
top, safetensors weights), so ``huggingface_hub.upload_folder(folder_path=DIR, repo_id=...)`` publishes
it as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from genframe.atomic import current_umask
from genframe.checkpoint import load_checkpoint, resolve_checkpoint, run_dir_of
from genframe.errors import CheckpointError, RunError

WEIGHTS_NAME = "model.safetensors"
EXPORT_NAME = "export.json"
EXPORT_FORMAT = 1


def is_export(path: str | Path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / WEIGHTS_NAME).is_file() and (path / EXPORT_NAME).is_file()


def read_export(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, torch.Tensor]]:
    """The export record, the config and the weights of an exported folder (safetensors: no unpickling)."""
    from safetensors.torch import load_file

    try:
        record = json.loads((folder / EXPORT_NAME).read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        weights = load_file(str(folder / WEIGHTS_NAME))
    except (OSError, ValueError) as exc:  # a missing config, bad JSON, a damaged safetensors file
        raise CheckpointError(f"{folder} is not a whole genframe export ({exc}); export the run again") from None
    if not isinstance(record, dict) or record.get("format") != EXPORT_FORMAT or "recipe" not in record:
        raise CheckpointError(f"{folder}/{EXPORT_NAME} is not a genframe export record (format {EXPORT_FORMAT})")
    return record, config, weights


def export_model(path: str | Path, out: str | Path, grid_n: int = 64, seed: int = 0, device: str = "auto") -> Path:
    """Write the shareable folder ``out`` for the run or checkpoint ``path``; returns ``out``."""
    from safetensors.torch import save_file

    from genframe.api import get_recipe, load

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out} already exists and is not empty; give a new folder with --out")
    checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    loaded = load(checkpoint, device)  # the sampling model, rebuilt as genframe.load does
    kind = "sampling_model" if "sampling_model" in state else "model"
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in loaded.model.state_dict().items()}
    loop = state["loop"]
    record = {
        "format": EXPORT_FORMAT, "recipe": state["recipe"], "plugin": state.get("plugin"),
        "plugin_version": state.get("plugin_version"), "genframe_version": state.get("genframe_version"),
        "weights": kind, "step": loop["step"], "epoch": loop.get("epoch", 0),
        "train_minutes": round(loop.get("train_seconds", 0.0) / 60, 2), "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
        "source": str(checkpoint),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    # built in a hidden folder beside it, renamed into place when whole: an interrupted export leaves no half folder
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / WEIGHTS_NAME).write_bytes(_safetensors_bytes(save_file, weights, record))
        (staging / "config.json").write_text(json.dumps(state["config"], indent=2, sort_keys=True) + "\n")
        (staging / EXPORT_NAME).write_text(json.dumps(record, indent=2) + "\n")
        evaluation = run_dir_of(checkpoint) / "eval.json"
        if evaluation.is_file():
            shutil.copyfile(evaluation, staging / "eval.json")
        get_recipe(state["recipe"]).draw_samples(loaded.sample(grid_n, seed=seed).images.cpu(), staging / "samples.png")
        (staging / "README.md").write_text(model_card(record, state["config"], staging, name=out.name))
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes it private; give the folder the usual permissions
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _safetensors_bytes(save_file, weights: dict[str, torch.Tensor], record: dict[str, Any]) -> bytes:
    """The safetensors file as bytes (its writer takes a file name)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / WEIGHTS_NAME
        save_file(weights, str(path), metadata={"genframe_recipe": record["recipe"], "genframe_weights": record["weights"]})
        return path.read_bytes()


def model_card(record: dict[str, Any], config: dict[str, Any], folder: Path, name: str | None = None) -> str:
    """README.md for the folder: what the model is, how it was trained, how good it is, how to use it
    (``name``: the folder's final name, when ``folder`` is where it is being built)."""
    name = name or folder.name
    which = "a callback's averaged or mixed weights" if record["weights"] == "sampling_model" else "the trained network"
    lines = [
        "---", "library_name: genframe", f"tags: [genframe, {record['recipe']}, generative]", "---", "",
        f"# {record['recipe']} model trained with genframe", "",
        f"A model of genframe's `{record['recipe']}` recipe (plugin `{record['plugin']}` {record['plugin_version']}, genframe "
        f"{record['genframe_version']}) trained on `{config.get('data', {}).get('name', '?')}` for "
        f"{record['step']} steps ({record['train_minutes']} minutes of training). The weights are the ones the run "
        f"samples with ({which}).",
        "", "![samples](samples.png)", "",
    ]
    evaluation = folder / "eval.json"
    if evaluation.is_file():
        report = json.loads(evaluation.read_text(encoding="utf-8"))
        names = list(report["samples"])
        lines += ["## Quality", "",
                  f"`genframe eval` with {report['n']} samples, against the {report['dataset']} test set:", "",
                  "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
                  "| samples | " + " | ".join(f"{report['samples'][n]:.3f}" for n in names) + " |"]
        for anchor, values in (report.get("anchors") or {}).items():
            lines.append(f"| {anchor} | " + " | ".join(f"{values[n]:.3f}" if n in values else "-" for n in names) + " |")
        lines.append("")
    lines += ["## Use it", "", "```bash", f"pip install genframe genframe-{record['plugin']}",
              f"genframe sample {name} --n 64 --out samples.png", f"genframe eval {name} --n 1000", "```",
              "", "```python", "import genframe", "", f"model = genframe.load({name!r})",
              "images = model.sample(16).images", "```", "",
              "Loading reads `model.safetensors`, `config.json` and `export.json`; nothing is unpickled.", ""]
    return "\n".join(lines)
