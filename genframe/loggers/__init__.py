"""Built-in loggers: listeners that watch a run (``genframe.Logger``), registered by ``plugins/builtins.py``;
opening a run's loggers (``attach``); loggers on genframe 0.1's lifecycle hooks (``legacy``)."""
