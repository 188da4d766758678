"""CARES for asklepios: trustworthiness evaluation of medical vision-language models.

Importing this package loads nothing heavy; :mod:`asklepios_cares.hooks` registers the components.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-cares")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
