"""OphNet for asklepios: ophthalmic surgical-video annotations, localisation and recognition.

Importing this package loads nothing heavy; :mod:`asklepios_ophnet.hooks` registers the
components.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-ophnet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
