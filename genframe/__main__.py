"""``python -m genframe`` (and ``torchrun -m genframe``) runs the CLI; so does the ``genframe`` command.

The ``genframe`` console script enters here, not at ``genframe.cli.main:main``, because a console script
imports its module before calling anything: an interrupt during that import (about 25 ms, most of it
click) would print a ``KeyboardInterrupt`` traceback. Here the import is inside the ``try``; this
module and ``genframe/__init__.py`` import next to nothing. (An interrupt while Python itself starts,
before any genframe code, is the interpreter's to report.) Until the command has imported torch, a signal
exits at once (genframe.util.signals).

An interrupted command ends with ``os._exit(130)`` once its exit handlers have run, not by returning to the
interpreter: CPython marks the process as killed by Ctrl-C whenever a ``KeyboardInterrupt`` has left a frame
run by ``exec`` or ``eval`` of source text (``dataclasses`` and ``namedtuple`` build classes that way while
modules import), caught or not, and at exit it then kills itself with SIGINT, so a parent process saw -2
instead of the 130 it was promised.
"""

import sys


def _exit_interrupted() -> None:
    """Run the exit handlers (loggers finish there), flush, and end with 130 whatever CPython had marked."""
    import atexit
    import os

    from genframe.contracts.errors import INTERRUPTED_EXIT
    from genframe.util.signals import exit_at_once_from_now, flush_output

    exit_at_once_from_now()  # a second signal meanwhile: one line, not a traceback from an exit handler
    atexit._run_exitfuncs()
    flush_output()
    os._exit(INTERRUPTED_EXIT)


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
        from genframe.contracts.errors import INTERRUPTED

        print(f"\n{INTERRUPTED}", file=sys.stderr)
        _exit_interrupted()
    except SystemExit as ending:
        from genframe.contracts.errors import INTERRUPTED_EXIT

        if ending.code == INTERRUPTED_EXIT:
            _exit_interrupted()
        raise
    finally:
        from genframe.util.signals import exit_at_once_from_now

        exit_at_once_from_now()  # a signal during the interpreter's teardown: one line, not a traceback


if __name__ == "__main__":
    main()
