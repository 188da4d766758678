"""Turn on the SDK conformance kit for the mlflow plugin (settings and lifecycle hooks)."""

from __future__ import annotations

asklepios_conformance = "asklepios_mlflow.hooks"
