"""UniSurv for asklepios: nonparametric discrete-time survival with a Margin-Mean-Variance loss.

Importing this package loads nothing heavy; :mod:`asklepios_unisurv.hooks` registers the
components.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-unisurv")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
