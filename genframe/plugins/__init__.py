"""Plugins: discovery through entry points (``host``), the registry of components, one-line reports
of a plugin's faults, the core's own registrations (``builtins``) and recipe lookup.
"""

from genframe.util.lazy import names_from

# ``from genframe.plugins import get_host`` keeps working
__getattr__ = names_from("genframe.plugins.host", __name__)
