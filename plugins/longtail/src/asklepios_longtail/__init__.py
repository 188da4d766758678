"""asklepios-longtail: MONICA's long-tailed learning methods as composable components.

Importing this package imports neither torch nor any component module; the registration hooks in
:mod:`asklepios_longtail.hooks` import each family module when the host asks for it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-longtail")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
