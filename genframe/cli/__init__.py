"""The click commands: parse, call the Python API, print one line per error. ``genframe.cli.main.cli``
is the group.
"""


def __getattr__(name: str):
    if name == "cli":  # ``from genframe.cli import cli``, as before the CLI became a package
        from genframe.cli.main import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
