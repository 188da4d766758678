"""asklepios-diffusion-tta: diffusion test-time input adaptation and corruption benchmarks."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("asklepios-diffusion-tta")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"
