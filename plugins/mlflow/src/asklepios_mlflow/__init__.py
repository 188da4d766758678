"""MLflow tracking for asklepios runs, through lifecycle hooks.

Importing this package loads nothing heavy; :mod:`asklepios_mlflow.hooks` holds the hooks
and imports ``mlflow`` only when a run starts.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-mlflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
