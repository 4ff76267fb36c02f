"""Rapidly: a privacy-first customer-intake backend for small EU companies."""

import pluggy

__version__ = "0.1.0"

#: Marker for tenant plugins' hook implementations: ``@rapidly.hookimpl``.
hookimpl = pluggy.HookimplMarker("rapidly")
