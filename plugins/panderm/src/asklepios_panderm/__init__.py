"""PanDerm for asklepios: the dermatology ViT foundation model and its downstream protocols.

Importing this package loads nothing heavy; :mod:`asklepios_panderm.hooks` registers the components.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-panderm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
