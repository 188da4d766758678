"""SynFER for asklepios: AU- and text-conditioned, guided diffusion synthesis of FER data.

Importing this package loads nothing heavy; :mod:`asklepios_synfer.hooks` registers the components.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-synfer")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
