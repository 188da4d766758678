"""The pluggy marker that plugin hook modules decorate their hook implementations with."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "asklepios"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Mark a function in a plugin's hook module as an implementation of an asklepios hook."""

__all__ = ["PROJECT_NAME", "hookimpl"]
