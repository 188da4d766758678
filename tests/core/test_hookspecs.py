"""The SDK's hook tables name exactly the hooks ``asklepios.hookspecs`` specifies."""

from __future__ import annotations

import inspect

from asklepios import hookspecs
from asklepios_sdk import PROJECT_NAME
from asklepios_sdk.registration import (
    COMMANDS_HOOK,
    KINDS,
    LIFECYCLE_HOOKS,
    REGISTRATION_HOOKS,
    SETTINGS_HOOK,
)


def _specs() -> dict[str, inspect.Signature]:
    marker = f"{PROJECT_NAME}_spec"
    return {
        name: inspect.signature(function)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def test_registration_and_lifecycle_tables_equal_the_specs():
    specs = _specs()
    tables = [
        set(REGISTRATION_HOOKS.values()),
        set(LIFECYCLE_HOOKS),
        {SETTINGS_HOOK},
        {COMMANDS_HOOK},
    ]
    assert set().union(*tables) == set(specs)
    assert sum(len(t) for t in tables) == len(specs)  # no hook in two tables
    assert tuple(REGISTRATION_HOOKS) == KINDS


def test_every_registration_hook_takes_only_register():
    specs = _specs()
    for hook in REGISTRATION_HOOKS.values():
        assert list(specs[hook].parameters) == ["register"], hook


def test_the_settings_hook_takes_only_register():
    assert list(_specs()[SETTINGS_HOOK].parameters) == ["register"]


def test_the_commands_hook_takes_only_register():
    assert list(_specs()[COMMANDS_HOOK].parameters) == ["register"]
