"""pytest plugin entry point of the conformance kit (``pytest11``); inert unless a suite opts in."""

from __future__ import annotations

import pytest

MARKER = "asklepios_conformance"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker the kit puts on its items, so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers", f"{MARKER}: a check of the asklepios conformance kit (asklepios_sdk.testing)"
    )
