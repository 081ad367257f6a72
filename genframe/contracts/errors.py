"""User-facing error types: each carries a one-line message that says what was wrong and how to fix it.

The CLI prints ``str(error)`` for any :class:`GenframeError` and exits non-zero, never a traceback.
"""


class GenframeError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""

    exit_code = 2


class ConfigError(GenframeError, ValueError):
    """A config file, key, value or override is invalid (also a ValueError, for code that catches those)."""


class PluginError(GenframeError):
    """A plugin failed to load or registered something invalid."""


class UnknownComponentError(GenframeError):
    """A recipe, model, sampler, trainer, dataset or logger name is not registered."""


class DataError(GenframeError):
    """A data file is missing, damaged, or could not be downloaded."""


class NoQualityMetric(DataError):
    """The run's data has no quality metric (unlabelled images, say): samples can be drawn, not scored."""


class CheckpointError(GenframeError):
    """A checkpoint or run directory is missing, damaged or incompatible."""


class RunError(GenframeError):
    """A run cannot start as requested (run directory exists, device unavailable, ...)."""


class DivergenceError(GenframeError):
    """Training diverged (non-finite or out-of-bound values); raised by trainers, handled by the loop."""

    exit_code = 3


# What an interrupt (Ctrl-C) outside a run's own handler prints, from the first instant the CLI runs on.
INTERRUPTED = ("genframe: interrupted (SIGINT); files are only ever renamed into place when whole, "
               "so nothing is left half-written")
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports it


class RunInterrupted(GenframeError):
    """SIGINT/SIGTERM stopped the run after a checkpoint was written; exit 128 + signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CallbackError(GenframeError):
    """A callback that acts on training failed; the run stopped with a checkpoint."""
