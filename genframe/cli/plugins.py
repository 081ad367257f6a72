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
