"""Built-in loggers. Each is a plugin object implementing the lifecycle hooks (see hookspecs)."""
