"""The conformance kit: checks every component a plugin registers against the SDK contracts.

Importing this package is cheap (no torch); the checks load on first use. A plugin's test suite
switches the kit on with one line in ``tests/conftest.py``::

    asklepios_conformance = "asklepios_myplugin.hooks"

or, to configure it, assigns a :class:`Conformance` with per-component :class:`Override` s. Outside
pytest, :func:`check_plugin` runs the same checks and returns a :class:`Report`. See
``sdk/README.md`` ("Conformance kit").
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from asklepios_sdk.testing._config import (
    DEFAULT_FACTS,
    HEAVY_MODULES,
    RULES,
    Conformance,
    Override,
    default_context,
    host_components,
    survival_facts,
)

if TYPE_CHECKING:
    from asklepios_sdk.testing._fixtures import TinyBackbone, TinyDataset
    from asklepios_sdk.testing._readme import COMPONENT_TABLE_HEADER, component_table_rows
    from asklepios_sdk.testing._runner import ConformanceError, Report, check_plugin

__all__ = [
    "COMPONENT_TABLE_HEADER",
    "DEFAULT_FACTS",
    "HEAVY_MODULES",
    "RULES",
    "Conformance",
    "ConformanceError",
    "Override",
    "Report",
    "TinyBackbone",
    "TinyDataset",
    "check_plugin",
    "component_table_rows",
    "default_context",
    "host_components",
    "survival_facts",
]

_LAZY = {
    "ConformanceError": "asklepios_sdk.testing._runner",
    "Report": "asklepios_sdk.testing._runner",
    "check_plugin": "asklepios_sdk.testing._runner",
    "COMPONENT_TABLE_HEADER": "asklepios_sdk.testing._readme",
    "component_table_rows": "asklepios_sdk.testing._readme",
    "TinyBackbone": "asklepios_sdk.testing._fixtures",
    "TinyDataset": "asklepios_sdk.testing._fixtures",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'asklepios_sdk.testing' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
