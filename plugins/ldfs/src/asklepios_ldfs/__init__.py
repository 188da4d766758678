"""LDFS for asklepios: language-guided diverse feature synthesis for CLIP fine-tuning.

Importing this package loads nothing heavy; :mod:`asklepios_ldfs.hooks` registers the components.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-ldfs")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
