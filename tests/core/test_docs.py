"""Docs kept honest by tests: every hook documented with its exact signature; CLI in the README."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from asklepios import cli, hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS_DOC = ROOT / "docs" / "hooks.md"
README = ROOT / "README.md"


def _hookspecs() -> dict[str, str]:
    specs = {}
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(func, f"{hookspecs.PROJECT_NAME}_spec"):
            specs[name] = f"def {name}{inspect.signature(func)}".replace("'", "")
    return specs


@pytest.mark.parametrize("name", sorted(_hookspecs()))
def test_every_hook_is_documented_with_its_exact_signature(name):
    assert _hookspecs()[name] in HOOKS_DOC.read_text(), f"{name} missing or stale in docs/hooks.md"


def test_docs_document_no_hook_that_does_not_exist():
    documented = set(re.findall(r"^### `(\w+)`", HOOKS_DOC.read_text(), flags=re.M))
    assert documented == set(_hookspecs())


CORE_COMMANDS = [
    "plugins list",
    "plugins show",
    "components",
    "validate",
    "schema",
    "doctor",
    "run",
    "report",
    "new-plugin",
]


def test_core_commands_exist():
    names = [f"plugins {c.name}" for c in cli.plugins_app.registered_commands]
    names += [c.name for c in cli.app.registered_commands if c.name]
    assert set(CORE_COMMANDS) <= set(names)


@pytest.mark.parametrize("command", CORE_COMMANDS)
def test_readme_documents_every_core_command(command):
    assert f"asklepios {command}" in README.read_text(), f"README lacks `asklepios {command}`"


def test_readme_gives_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text


def test_readme_documents_the_exit_codes():
    text = README.read_text()
    for code in (cli.EXIT_OK, cli.EXIT_ERROR, cli.EXIT_USAGE, cli.EXIT_DOCTOR, cli.EXIT_INTERNAL):
        assert re.search(rf"^\|\s*`{code}`\s*\|", text, flags=re.M), f"exit code {code}"
