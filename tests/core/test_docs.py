"""Docs kept honest by tests: every hook documented with its exact signature; CLI in the README."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from asklepios import cli, hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS_DOC = ROOT / "docs" / "hooks.md"
README = ROOT / "README.md"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"
CHANGELOG = ROOT / "CHANGELOG.md"
SDK_README = ROOT / "sdk" / "README.md"


def _python_blocks(path: Path) -> list[str]:
    """Return the bodies of the fenced python code blocks of a markdown file."""
    return re.findall(r"^```python\n(.*?)^```$", path.read_text(), flags=re.M | re.S)


def _hookspecs() -> dict[str, str]:
    specs = {}
    for name, func in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(func, f"{hookspecs.PROJECT_NAME}_spec"):
            specs[name] = f"def {name}{inspect.signature(func)}".replace("'", "")
    return specs


@pytest.mark.parametrize("name", sorted(_hookspecs()))
def test_every_hook_is_documented_with_its_exact_signature(name):
    signature = _hookspecs()[name]
    assert signature in HOOKS_DOC.read_text(), f"{name} missing or stale in docs/hooks.md"
    blocks = [b for b in _python_blocks(HOOKS_DOC) if signature in b]
    assert blocks, f"{name}'s signature is not inside a ```python block, so it does not render"


@pytest.mark.parametrize("path", [HOOKS_DOC, CONTRIBUTING, CHANGELOG, SDK_README], ids=str)
def test_python_blocks_render_and_parse(path):
    text = path.read_text()
    fences = re.findall(r"^(`{2,})(\w*)$", text, flags=re.M)
    assert all(len(ticks) == 3 for ticks, _ in fences), f"a fence in {path.name} is not ```"
    for block in _python_blocks(path):
        ast.parse(block)  # a signature block is written `def hook(...) -> T: ...`


def test_hooks_doc_gives_the_lazy_register_contract():
    text = HOOKS_DOC.read_text()
    assert "register(name, target, params, doc=None)" in text
    assert '"package.module:Class"' in text and "lazy" in text
    assert "AsklepiosDeprecationWarning" in text


def test_contributing_points_to_the_hooks_reference_and_the_changelog():
    text = CONTRIBUTING.read_text()
    assert "docs/hooks.md" in text and "CHANGELOG.md" in text
    assert "pip install -e '.[test]'" in text and "python -m pytest" in text
    assert "--dist-name" in text


def test_changelog_records_the_sdk_02_contract_change_and_its_migration():
    text = CHANGELOG.read_text()
    section = text.split("\n## ")[1]
    assert section.startswith("0.2.0")
    for needle in ("register(", "AsklepiosDeprecationWarning", "0.3", "asklepios_sdk.io"):
        assert needle in section, needle
    for rule in ("registration-light", "params-naming", "checkpoint-state"):
        assert rule in section, rule
    before, after = ("Before" in section), ("After" in section)
    assert before and after, "the migration shows the hook module before and after"


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
