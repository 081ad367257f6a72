"""``python -m genframe`` (and ``torchrun -m genframe``) runs the CLI; so does the ``genframe`` command.

The ``genframe`` console script enters here, not at ``genframe.cli.main:main``, because a console script
imports its module before calling anything: an interrupt during that import (about 25 ms, most of it
click) would print a ``KeyboardInterrupt`` traceback. Here the import is inside the ``try``; this
module and ``genframe/__init__.py`` import next to nothing. (An interrupt while Python itself starts,
before any genframe code, is the interpreter's to report.) Until the command has imported torch, a signal
exits at once (genframe.util.signals).
"""

import sys


def main() -> None:
    """Import and run the CLI; an interrupt at any point of that is one line and exit status 130."""
    try:
        from genframe.util.signals import exit_at_once_from_now

        exit_at_once_from_now()  # until the command has imported what it needs (genframe.cli.main resolve_command)
        from genframe.util.openmp import spin_less

        spin_less()
        from genframe.cli.main import main as cli_main

        cli_main()
    except KeyboardInterrupt:
        from genframe.contracts.errors import INTERRUPTED, INTERRUPTED_EXIT

        print(f"\n{INTERRUPTED}", file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    finally:
        from genframe.util.signals import exit_at_once_from_now

        exit_at_once_from_now()  # a signal during the interpreter's teardown: one line, not a traceback


if __name__ == "__main__":
    main()
