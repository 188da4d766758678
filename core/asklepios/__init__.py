"""asklepios: a plugin framework for medical-imaging deep learning research.

The Python API (:mod:`asklepios.api`) is re-exported here lazily, so ``import asklepios`` stays
fast and imports neither torch nor any plugin:

>>> import asklepios
>>> config = asklepios.load_config("examples/configs/quickstart.yaml")  # doctest: +SKIP
>>> run = asklepios.run(config)  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asklepios.api import Run, RunOpenError, compare, load_config, run, validate

__all__ = ["Run", "RunOpenError", "__version__", "compare", "load_config", "run", "validate"]

_API = ("Run", "RunOpenError", "compare", "load_config", "run", "validate")


def __getattr__(name: str) -> Any:
    if name == "__version__":
        try:
            return version("asklepios")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0+unknown"
    if name in _API:
        value = getattr(import_module("asklepios.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'asklepios' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
