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

import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from genframe.config.sections import config_to_dict
from genframe.contracts.errors import RunError
from genframe.plugins.registry import following_runs
from genframe.training.checkpoint import resolve_checkpoint, run_dir_of
from genframe.using.exported import EXPORT_FORMAT, EXPORT_NAME, WEIGHTS_NAME
from genframe.util.atomic import atomic_write_bytes, atomic_write_text, current_umask, fsync_dir
from genframe.util.metric_names import renamed_metrics


@following_runs
def export_model(path: str | Path, out: str | Path, grid_n: int = 64, seed: int = 0, device: str = "auto") -> Path:
    """Write the shareable folder ``out`` for the run or checkpoint ``path``; returns ``out``."""
    from safetensors.torch import save

    from genframe.plugins.recipes import get_recipe
    from genframe.using.load import load

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists and is not an empty folder; give a new folder with --out")
    if out.exists() and not os.access(out, os.W_OK):  # it is replaced by the export: its owner said no writing
        raise RunError(f"{out} is not writable; give a writable folder with --out, or make this one writable")
    resolve_checkpoint(path)  # a path that holds no checkpoint: one line, before anything is built
    loaded = load(path, device)  # the weights the run samples with, as genframe.load chooses them
    checkpoint = loaded.checkpoint
    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in loaded.model.state_dict().items()}
    record = {
        "format": EXPORT_FORMAT, "recipe": loaded.recipe_name, "plugin": loaded.provenance.get("plugin"),
        "plugin_version": loaded.provenance.get("plugin_version"),
        "genframe_version": loaded.provenance.get("genframe_version"), "weights": loaded.provenance["weights"],
        "step": loaded.step, "epoch": loaded.epoch,
        "train_minutes": round(loaded.provenance.get("train_seconds", 0.0) / 60, 2),
        "exported": time.strftime("%Y-%m-%d %H:%M:%S"), "source": str(checkpoint),
        "components": dict(loaded.choices.recorded),  # which plugin each bare name was (genframe.plugins.registry)
    }
    config = config_to_dict(loaded.config)  # as resolved, so that it loads as it is
    evaluation = matching_evaluation(checkpoint, loaded.step)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # built in a hidden folder beside it, renamed into place when whole: an interrupted export leaves no half folder
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise RunError(f"cannot write {out} ({exc.strerror or exc}); give a writable place with --out") from None
    try:
        metadata = {"genframe_recipe": record["recipe"], "genframe_weights": record["weights"]}
        data = save(weights, metadata=metadata)
        record["weights_sha256"] = hashlib.sha256(data).hexdigest()  # read_export proves the weights with it
        atomic_write_bytes(staging / WEIGHTS_NAME, data)
        atomic_write_text(staging / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
        atomic_write_text(staging / EXPORT_NAME, json.dumps(record, indent=2) + "\n")
        if evaluation is not None:
            atomic_write_text(staging / "eval.json", json.dumps(evaluation, indent=2) + "\n")
        grid = loaded.sample(grid_n, seed=seed).images.cpu()
        get_recipe(record["recipe"]).draw_samples(grid, staging / "samples.png")
        atomic_write_text(staging / "README.md", model_card(record, config, staging, name=out.name))
        mode = 0o777 & ~current_umask()  # mkdtemp makes it private; give the folder the usual permissions...
        if out.exists():
            mode = out.stat().st_mode & 0o7777  # ...or those of the empty folder it takes the place of
        os.chmod(staging, mode | stat.S_IWUSR)  # writable until the files are in (root bypasses it anyway)
        fsync_dir(staging)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
        os.chmod(out, mode)
        fsync_dir(out.parent)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise RunError(f"cannot write {out} ({error.strerror or error}); nothing was left there") from None
        raise
    return out


def matching_evaluation(checkpoint: Path, step: int) -> dict[str, Any] | None:
    """The run's eval.json when it measured this very checkpoint at this step; else None (with a warning when
    the report is of another checkpoint, so the card never quotes figures of other weights)."""
    path = run_dir_of(checkpoint) / "eval.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(report, dict) and isinstance(report.get("samples"), dict):  # made by genframe 0.1: "coverage"
            report["samples"] = renamed_metrics(report["samples"], str(path))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        warnings.warn(f"genframe: {path} is unreadable ({exc}); the export carries no quality figures", UserWarning,
                      stacklevel=3)
        return None
    measured = (report.get("step"), Path(str(report.get("checkpoint", ""))).name) if isinstance(report, dict) else None
    if measured != (step, checkpoint.name) or "samples" not in report:
        warnings.warn(f"genframe: {path} measured {measured[1] if measured else '?'} at step "
                      f"{measured[0] if measured else '?'}, not {checkpoint.name} at step {step}; the export carries "
                      "no quality figures (run `genframe eval` on the run, then export again)", UserWarning,
                      stacklevel=3)
        return None
    return report


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
