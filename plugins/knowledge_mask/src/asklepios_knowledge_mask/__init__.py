"""Fundus2Video's clinical-knowledge guidance for asklepios (plugin ``knowledge_mask``).

Importing this package loads nothing heavy: components live in family modules that the hook module
imports inside its registration hooks.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-knowledge-mask")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
