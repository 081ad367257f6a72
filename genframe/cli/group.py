"""The command group every genframe command joins: one-line errors and warnings, torch imported only for the
commands that need it, and the progress report long commands share.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

from genframe.contracts.errors import INTERRUPTED, INTERRUPTED_EXIT, GenframeError, RunInterrupted

# The commands that work with torch: it is imported before they start (GenframeGroup.resolve_command). The others
# (plugins, config, plot, sweep, whose points are processes of their own) answer without it.
TORCH_COMMANDS = ("run", "sample", "eval", "export", "score", "ood", "denoise", "inpaint")


UNSIZED_EVERY = 10.0  # seconds between progress lines of work whose size is not known in advance


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


class GenframeGroup(click.Group):
    """Turns user errors, genframe's and click's usage errors alike, into one ``Error:`` line."""

    def make_context(self, *args, **kwargs) -> click.Context:
        """Parse the command line; an interrupt meanwhile is the one line (click would say "Aborted!", exit 1)."""
        try:
            return super().make_context(*args, **kwargs)
        except KeyboardInterrupt:
            click.echo(f"\n{INTERRUPTED}", err=True)
            raise click.exceptions.Exit(INTERRUPTED_EXIT) from None

    def resolve_command(self, ctx: click.Context, args: list[str]):
        """The subcommand; one that works with torch gets it imported here, while a signal still exits at once
        (genframe.util.signals: an interrupt inside torch's import can abort the process); from then on Python's own
        ``KeyboardInterrupt``, which the command's work cleans up after."""
        name, command, rest = super().resolve_command(ctx, args)
        if not ctx.resilient_parsing:
            if name in TORCH_COMMANDS and "--help" not in rest:
                import torch  # noqa: F401
            from genframe.util.signals import interrupt_from_now

            interrupt_from_now()
        return name, command, rest

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RunInterrupted as exc:  # not an error: the run stopped cleanly as asked
            click.echo(f"genframe: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:  # before a run's own handler is in place (start-up), or in sample/eval
            click.echo(f"\n{INTERRUPTED}", err=True)
            ctx.exit(INTERRUPTED_EXIT)
        except GenframeError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None
        except click.UsageError as exc:
            command = f" {exc.ctx.command_path} --help" if exc.ctx is not None else " genframe --help"
            error = click.ClickException(f"{exc.format_message()} (see{command})")
            error.exit_code = exc.exit_code
            raise error from None


@click.group(cls=GenframeGroup, name="genframe")
@click.version_option(package_name="genframe")
def cli() -> None:
    """Train, sample and compare generative models; model families come from plugins."""
    from genframe.util.deprecation import GenframeDeprecationWarning

    warnings.formatwarning = _one_line_warning
    # Python hides deprecations outside __main__; on the command line they are about the user's own plugins
    # and configs, which is who must act on them (unless -W or PYTHONWARNINGS says otherwise)
    if not sys.warnoptions:
        warnings.filterwarnings("default", category=GenframeDeprecationWarning)


@contextmanager
def progress_reporter(total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A tqdm bar on a terminal; one line per chunk otherwise (logs, CI), or every 10 s when ``total`` is None;
    both on stderr."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        with tqdm(total=total, desc=label, file=sys.stderr, unit="sample", dynamic_ncols=True) as bar:
            yield bar.update
        return
    done, said = 0, 0.0

    def report(count: int) -> None:
        nonlocal done, said
        done += count
        if total:
            click.echo(f"{label}: {done}/{total}", err=True)
        elif time.monotonic() - said >= UNSIZED_EVERY:  # no end to count to: a line now and then, not per chunk
            said = time.monotonic()
            click.echo(f"{label}: {done}", err=True)

    yield report
