"""Turn on the SDK conformance kit for the tensorboard plugin (settings and lifecycle hooks)."""

from __future__ import annotations

asklepios_conformance = "asklepios_tensorboard.hooks"
