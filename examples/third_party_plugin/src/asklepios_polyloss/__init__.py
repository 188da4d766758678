"""asklepios-polyloss: PolyLoss (Leng et al., ICLR 2022) as asklepios losses.

Importing this package is free of torch; the losses register when asklepios activates the plugin.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("asklepios-polyloss")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
