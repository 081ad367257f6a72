"""``genframe plugins``: what is installed, what failed to load and how to fix it."""

from __future__ import annotations

import json
import textwrap

import click

from genframe.cli.group import cli


@cli.group(invoke_without_command=True)
@click.pass_context
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (failures with their tracebacks).")
@click.option("--traceback", "show_traceback", is_flag=True, help="The whole traceback of each plugin that failed.")
def plugins(ctx: click.Context, as_json: bool, show_traceback: bool) -> None:
    """List installed plugins, their hooks and components, and any that failed to load; `genframe plugins new`
    starts a plugin of your own."""
    if ctx.invoked_subcommand is not None:
        return
    from genframe.plugins.host import get_host

    host = get_host()
    components = {}
    for entry in host.registry.entries():
        components.setdefault(entry.kind, []).append({"name": entry.name, "plugin": entry.plugin})
    if as_json:
        click.echo(json.dumps({
            "plugins": [vars(p) for p in host.plugins],
            "components": components,
            "failed": [vars(f) for f in host.failures],
        }, indent=2))
        return
    click.echo("Plugins:")
    for p in host.plugins:
        click.echo(f"  {p.name} {p.version} ({p.source})  hooks: {', '.join(p.hooks) or '-'}")
    click.echo("Components:")
    for kind, entries in components.items():
        click.echo(f"  {kind + ':':9} " + ", ".join(f"{e['name']} [{e['plugin']}]" for e in entries))
    ambiguous = {kind: host.registry.ambiguous(kind) for kind in components}
    for kind, names in ambiguous.items():
        for name, qualified in names.items():  # a bare name is refused until the user picks one
            click.echo(f"  {kind} {name!r} is offered by {len(qualified)} plugins: name it {' or '.join(qualified)}")
    if host.failures:
        click.echo("Failed to load:")
        for failure in host.failures:
            click.echo(f"  {failure.name}: {failure.error}")
            if failure.fix:
                click.echo(f"      fix: {failure.fix}")
            if show_traceback and failure.traceback:  # the one line says where; this says how it got there
                click.echo(textwrap.indent(failure.traceback.rstrip("\n"), "      "))


@plugins.command("new")
@click.argument("name")
@click.option("--samples", type=click.Choice(["images", "vectors"]), default="images", show_default=True,
              help="images: 1-channel images (MNIST); vectors: 2-D points, with a dataset, pictures and metric "
                   "of its own.")
@click.option("--time-conditioned", is_flag=True,
              help="The net takes a time, forward(x, t): conditional flow matching with an Euler ODE sampler "
                   "(default: an energy-based model, Langevin sampling, contrastive divergence).")
@click.option("--dir", "folder", type=click.Path(), help="Where to write it [default: ./genframe-NAME].")
def new(name: str, samples: str, time_conditioned: bool, folder: str | None) -> None:
    """Write a new plugin package NAME to start from: recipe, config, model, sampler, trainer, a conformance
    test, a README and a pyproject.toml with the entry point; `pip install -e DIR` and it passes its test."""
    from genframe.plugins.scaffold import write_plugin

    written = write_plugin(name, folder, samples=samples, time_conditioned=time_conditioned)
    click.echo(f"wrote {written.folder}: {written.summary}")
    for path in written.files:
        click.echo(f"  {path}")
    click.echo("next:")
    for command in written.next_commands():
        click.echo(f"  {command}")
