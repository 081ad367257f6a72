"""The ``genframe`` command line: a thin shell over the Python API (``genframe.train``, ``genframe.load``...).

Every user error (a :class:`GenframeError`) is printed as one ``Error: ...`` line with a non-zero
exit status; tracebacks are kept for bugs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

import genframe.cli.plugins  # their commands join the group
import genframe.cli.scoring  # noqa: F401
from genframe.cli.group import cli, progress_reporter
from genframe.contracts.errors import INTERRUPTED, INTERRUPTED_EXIT


@cli.command()
@click.argument("recipe")
@click.argument("settings", nargs=-1, metavar="[SECTION.KEY=VALUE]...")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML, YAML or JSON config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a setting, e.g. trainer.epochs=3.")
@click.option("--run-dir", type=click.Path(file_okay=False), help="Where to write the run (default runs/RECIPE-TIME).")
@click.option("--resume", type=click.Path(), help="Continue the run in this directory (or from this checkpoint).")
@click.option("--quiet", is_flag=True, help="No console progress (other loggers still log).")
def run(recipe: str, settings: tuple[str, ...], config_path: str | None, overrides: tuple[str, ...],
        run_dir: str | None, resume: str | None, quiet: bool) -> None:
    """Train RECIPE (e.g. ebm); without --config, the recipe's defaults.

    Bare SECTION.KEY=VALUE words after RECIPE are overrides like --set (after them), as a W&B sweep
    agent passes them with ${args_no_hyphens}."""
    from genframe.training.run import train

    if resume and run_dir:
        raise click.UsageError("--resume continues the run in its own directory; leave out --run-dir")
    stray = [word for word in settings if "=" not in word]
    if stray:
        raise click.UsageError(f"unexpected argument {stray[0]!r}: after RECIPE give settings as section.key=value "
                               "(or options such as --run-dir)")
    result = train(recipe, config_path, (*overrides, *settings), run_dir=run_dir, resume=resume, quiet=quiet)
    if result.rank == 0:  # under torchrun, one summary
        click.echo(f"run {result.status}: {result.run_dir} (step {result.step}, checkpoint {result.checkpoint})")
        if result.stopped:
            click.echo(f"stopped early: {result.stopped}")




@cli.command()
@click.argument("path", type=click.Path())
@click.option("--n", "n", default=64, show_default=True, type=click.IntRange(min=1), help="Number of samples.")
@click.option("--steps", type=click.IntRange(min=0), help="Sampler steps (default: the recipe's generation steps).")
@click.option("--out", default="samples.png", show_default=True, type=click.Path(dir_okay=False), help="Picture to write (for images, a PNG grid; a recipe may draw its samples otherwise).")
@click.option("--gif", type=click.Path(dir_okay=False), help="Also write the sampling chain as an animated GIF.")
@click.option("--tensor", type=click.Path(dir_okay=False),
              help="Also write all samples to FILE, a .npy written as they are made (numpy.load gives an "
                   "N x <example shape> float32 array; mmap_mode='r' reads it without loading it whole).")
@click.option("--chunk", type=click.IntRange(min=1),
              help="Samples generated at once [default: 500 on CPU, 8192 on a GPU, halved if memory runs out].")
@click.option("--grid-n", default=256, show_default=True, type=click.IntRange(min=1),
              help="How many of the samples the PNG grid (and GIF) show.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
def sample(path: str, n: int, steps: int | None, out: str, gif: str | None, tensor: str | None, chunk: int | None,
           grid_n: int, seed: int, device: str) -> None:
    """Generate samples from a trained run directory or checkpoint PATH."""
    from genframe.using.sample import sample_to_files

    start = time.perf_counter()
    with progress_reporter(n, "sampling") as progress:
        kept = sample_to_files(path, out, n=n, steps=steps, gif=gif, seed=seed, device=device, tensor=tensor,
                               chunk=chunk, grid_n=grid_n, progress=progress)
    seconds = time.perf_counter() - start
    written = [out, *(name for name in (gif, tensor) if name)]
    nfe = f", {kept.nfe} function evaluations each" if kept.nfe else ""
    click.echo(f"{n} samples in {seconds:.1f} s ({1000 * seconds / n:.1f} s per 1000{nfe}); wrote {', '.join(written)}")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(dir_okay=False),
              help="PNG, SVG or PDF to write (default RUN_DIR/curves.png; for several runs, curves.png here).")
@click.option("--metric", "metrics", multiple=True, help="Only these metrics (repeatable), e.g. --metric eval/fd.")
def plot(run_dirs: tuple[str, ...], out: str | None, metrics: tuple[str, ...]) -> None:
    """Draw the training curves of one or more runs (from metrics.jsonl), overlaid; works during a run."""
    from genframe.using.plot import plot_runs

    click.echo(f"wrote {plot_runs(list(run_dirs), out, list(metrics) or None)}")


@cli.command("eval")
@click.argument("path", type=click.Path())
@click.option("--n", "n", default=1000, show_default=True, type=click.IntRange(min=2), help="Samples to generate.")
@click.option("--steps", type=click.IntRange(min=0), help="Sampler steps (default: the recipe's generation steps).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def eval_command(path: str, n: int, steps: int | None, seed: int, device: str, as_json: bool) -> None:
    """Measure sample quality of a run directory or checkpoint PATH against the test set.

    In a small classifier's feature space: Fréchet distance and KID (lower is better), precision and recall,
    density and k-NN coverage; the classifier's confidence, the share of confident samples and the class spread
    (docs/evaluation.md); writes RUN_DIR/eval.json.
    """
    from genframe.using.evaluate import evaluate, format_report

    report = evaluate(path, n=n, steps=steps, seed=seed, device=device)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


@cli.command()
@click.argument("recipe")
@click.option("--grid", "grid", multiple=True, required=True, metavar="KEY=V1,V2",
              help="Values of one setting (repeatable; a JSON list for values that are lists: 'key=[[1,2],[3,4]]').")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML, YAML or JSON config file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="A setting for every point.")
@click.option("--runs-dir", required=True, type=click.Path(file_okay=False), help="One run directory per point in here.")
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(min=1),
              help="Points run at once (the machine's threads are split between them).")
@click.option("--metric", help="The metric of the overlay plot [default: eval/fd if measured, else loss].")
def sweep(recipe: str, grid: tuple[str, ...], config_path: str | None, overrides: tuple[str, ...], runs_dir: str,
          parallel: int, metric: str | None) -> None:
    """Run RECIPE at every point of a grid of settings; again, to finish what was interrupted.

    Writes RUNS_DIR/summary.csv, summary.md and summary.png (docs/sweeps.md)."""
    from genframe.plugins.recipes import recipe_config
    from genframe.using.sweep import parse_grid, plan, run_sweep

    points = parse_grid(list(grid))
    for point in plan(points, Path(runs_dir)):  # every point's config is valid before any runs
        recipe_config(recipe, config_path, [*overrides, *point.overrides])
    run_sweep(recipe, points, runs_dir, config_path, overrides, parallel, metric,
              say=lambda line: click.echo(line, err=True))
    click.echo((Path(runs_dir) / "summary.md").read_text(encoding="utf-8"), nl=False)


@cli.command()
@click.argument("path", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New folder to write.")
@click.option("--grid-n", default=64, show_default=True, type=click.IntRange(min=1),
              help="Samples in the folder's samples.png.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
def export(path: str, out: str, grid_n: int, seed: int, device: str) -> None:
    """Write a trained run or checkpoint PATH as a folder to share: model.safetensors, config.json,
    export.json, eval.json if any, samples.png and a README.md model card (docs/export.md)."""
    from genframe.using.export import export_model

    folder = export_model(path, out, grid_n=grid_n, seed=seed, device=device)
    click.echo(f"wrote {folder}: {', '.join(sorted(p.name for p in folder.iterdir()))}")


@cli.group()
def config() -> None:
    """Show a recipe's config or its JSON schema."""


@config.command("show")
@click.argument("recipe")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Start from this file.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--format", "fmt", type=click.Choice(["toml", "json"]), default="toml", show_default=True)
def config_show(recipe: str, config_path: str | None, overrides: tuple[str, ...], fmt: str) -> None:
    """Print RECIPE's resolved config (its defaults unless --config/--set are given)."""
    from genframe.config.sections import config_to_dict
    from genframe.plugins.recipes import recipe_config
    from genframe.util.tomlwrite import dumps

    data = config_to_dict(recipe_config(recipe, config_path, overrides))
    click.echo(json.dumps(data, indent=2) if fmt == "json" else dumps(data), nl=fmt == "json")


@config.command("schema")
@click.argument("recipe")
def config_schema(recipe: str) -> None:
    """Print the JSON schema of RECIPE's config."""
    from genframe.plugins.recipes import get_recipe

    click.echo(json.dumps(get_recipe(recipe).config_class.model_json_schema(), indent=2))



def main() -> None:
    """Run the CLI; an interrupt that click does not see (before or after it runs) is the same one line."""
    try:
        cli(prog_name="genframe")
    except KeyboardInterrupt:
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
