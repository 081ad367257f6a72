"""The commands that ask a trained model about given images: ``score``, ``ood``, ``inpaint``, ``denoise``.

A thin shell over :mod:`genframe.using.scoring` and :mod:`genframe.using.completion`, added to the ``genframe`` group
by ``genframe.cli.main``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from genframe.cli.group import cli, progress_reporter

DEVICE = click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
SEED = click.option("--seed", default=0, show_default=True, type=int)
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
SCORE = click.option("--score", "kind", help="Which of the recipe's scores [default: the recipe's first].")
def image_work_options(verb: str, out: str, shown: str, steps_help: str, written: str):
    """The options ``inpaint`` and ``denoise`` share: how many images, sampler steps, the picture and the .npy."""
    options = [
        click.option("--n", "n", default=1000, show_default=True, type=click.IntRange(min=1), help=f"Images to {verb}."),
        click.option("--steps", type=click.IntRange(min=1), help=steps_help),
        click.option("--out", default=out, show_default=True, type=click.Path(dir_okay=False),
                     help=f"Picture of {shown} images."),
        click.option("--grid-n", default=32, show_default=True, type=click.IntRange(min=1), help="Images in the picture."),
        click.option("--tensor", type=click.Path(dir_okay=False), help=f"Also write every {written} to this .npy."),
    ]

    def apply(command):
        for option in reversed(options):  # the order they are listed in --help
            command = option(command)
        return command

    return apply


INPUTS_HELP = ("DATASET:SPLIT (mnist:test), noise, gaussian, constant, flipped[:CLASSES], inverted, image files, "
               "a folder or a .npy/.npz/.pt file")


@cli.command(help="Score INPUTS with the model of run PATH (higher = more typical of its training data).\n\n"
                  f"INPUTS: {INPUTS_HELP}.")
@click.argument("path", type=click.Path())
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out", type=click.Path(dir_okay=False), help="CSV of every score (input,index,score).")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Histogram of each input's scores (PNG, SVG or PDF) [default: scores.png beside --out, else in "
                   "the current folder].")
@click.option("--n", "n", type=click.IntRange(min=1), help="At most N images of each input [built-in sets: as many "
                                                           "as the run's test split].")
@SCORE
@SEED
@DEVICE
@AS_JSON
def score(path: str, inputs: tuple[str, ...], out: str | None, plot: str | None, n: int | None, kind: str | None,
          seed: int, device: str, as_json: bool) -> None:
    from genframe.using.scoring_files import format_scores, score_to_files

    if plot is None:  # the picture keeps the CSV company: both where --out puts its file
        plot = str(Path(out).parent / "scores.png") if out is not None else "scores.png"
    with progress_reporter(None, "scoring") as progress:
        report = score_to_files(path, list(inputs), out, plot, kind, n, seed, device, progress)
    click.echo(json.dumps(report, indent=2) if as_json else format_scores(report))
    if not as_json:
        click.echo(f"wrote {', '.join(p for p in (report.get('csv'), report.get('plot')) if p)}")


@cli.command(help="How well the score of run PATH tells its data from other data: AUROC, AUPR and FPR at 95% TPR "
                  f"for each out-set.\n\nSets: {INPUTS_HELP}. Writes RUN_DIR/ood.json and sends the figures to "
                  "the run's loggers.")
@click.argument("path", type=click.Path())
@click.option("--in", "inside", help="The in-distribution set [default: the run's dataset's test split].")
@click.option("--out", "outsides", multiple=True,
              help="An out-of-distribution set (repeatable) [default: noise, gaussian, constant, flipped, inverted].")
@click.option("--plot", type=click.Path(dir_okay=False), help="Overlaid score histograms [default: RUN_DIR/ood.png].")
@click.option("--n", "n", type=click.IntRange(min=2), help="At most N images of each set.")
@SCORE
@SEED
@DEVICE
@AS_JSON
def ood(path: str, inside: str | None, outsides: tuple[str, ...], plot: str | None, n: int | None, kind: str | None,
        seed: int, device: str, as_json: bool) -> None:
    from genframe.using.scoring_files import detect_ood, format_ood

    with progress_reporter(None, "scoring") as progress:
        report = detect_ood(path, inside, list(outsides), kind, n, seed, device, plot, progress)
    click.echo(json.dumps(report, indent=2) if as_json else format_ood(report))


@cli.command()
@click.argument("path", type=click.Path())
@click.option("--images", required=True, help="Images to complete: " + INPUTS_HELP + ".")
@click.option("--mask", default="bottom-half", show_default=True,
              help="Pixels to hide: bottom-half, top-half, left-half, right-half, center, random:P or FILE.png "
                   "(white = hidden).")
@image_work_options("complete", "inpaint.png", "masked, completed and original", "Sampler steps (see --match).",
                    "completion")
@click.option("--match", default=10000, show_default=True, type=click.IntRange(min=0),
              help="Start the hidden pixels from the mean of the 8 closest (on the known pixels) of this many fresh "
                   "samples, then take --steps [default 3]; 0: from the sampler's noise [--steps default: the "
                   "recipe's generation steps].")
@SEED
@DEVICE
@AS_JSON
def inpaint(path: str, images: str, mask: str, n: int, steps: int | None, out: str, grid_n: int, tensor: str | None,
            match: int, seed: int, device: str, as_json: bool) -> None:
    """Complete images with some pixels hidden, with the model of run PATH (the known pixels held fixed).

    Labelled images are read by the dataset's quality classifier: how often completions keep their label.
    Writes RUN_DIR/inpaint.json."""
    from genframe.using.completion_files import format_inpaint, inpaint_to_files

    with progress_reporter(match, "sampling to match") as sampled, progress_reporter(n, "completing") as progress:
        report = inpaint_to_files(path, images, mask, n, steps, seed, device, out, grid_n, tensor, progress, match,
                                  sampled)
    click.echo(json.dumps(report, indent=2) if as_json else format_inpaint(report))


@cli.command()
@click.argument("path", type=click.Path())
@click.option("--images", required=True, help="Clean images, to add noise to: " + INPUTS_HELP + ".")
@click.option("--noise", default=0.3, show_default=True, type=float,
              help="Standard deviation of the Gaussian noise added, in the images' [-1, 1] units.")
@image_work_options("clean", "denoise.png", "noisy, denoised and clean",
                    "Sampler steps [default: the recipe's denoising steps].", "denoised image")
@SEED
@DEVICE
@AS_JSON
def denoise(path: str, images: str, noise: float, n: int, steps: int | None, out: str, grid_n: int,
            tensor: str | None, seed: int, device: str, as_json: bool) -> None:
    """Add noise to images and clean it away with the model of run PATH; PSNR before and after.

    Writes RUN_DIR/denoise.json."""
    from genframe.using.completion_files import denoise_to_files, format_denoise

    with progress_reporter(n, "denoising") as progress:
        report = denoise_to_files(path, images, noise, n, steps, seed, device, out, grid_n, tensor, progress)
    click.echo(json.dumps(report, indent=2) if as_json else format_denoise(report))
