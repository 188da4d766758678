"""The SDK's hook tables name exactly the hooks ``asklepios.hookspecs`` specifies."""

from __future__ import annotations

import inspect

from asklepios import hookspecs
from asklepios_sdk import PROJECT_NAME
from asklepios_sdk.registration import KINDS, LIFECYCLE_HOOKS, REGISTRATION_HOOKS


def _specs() -> dict[str, inspect.Signature]:
    marker = f"{PROJECT_NAME}_spec"
    return {
        name: inspect.signature(function)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def test_registration_and_lifecycle_tables_equal_the_specs():
    specs = _specs()
    assert set(REGISTRATION_HOOKS.values()) | set(LIFECYCLE_HOOKS) == set(specs)
    assert not set(REGISTRATION_HOOKS.values()) & set(LIFECYCLE_HOOKS)
    assert tuple(REGISTRATION_HOOKS) == KINDS


def test_every_registration_hook_takes_only_register():
    specs = _specs()
    for hook in REGISTRATION_HOOKS.values():
        assert list(specs[hook].parameters) == ["register"], hook
