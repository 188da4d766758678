"""Plugins import only ``asklepios_sdk`` (and third-party libraries), never ``asklepios.*``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _plugin_sources() -> list[Path]:
    files = sorted((ROOT / "plugins").glob("**/*.py"))
    files += sorted((ROOT / "examples").glob("**/src/**/*.py"))
    return [f for f in files if ".venv" not in f.parts and "build" not in f.parts]


def _core_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"line {node.lineno}: {name}"
            for name in names
            if name == "asklepios" or name.startswith("asklepios.")
        ]
    return found


def test_the_check_sees_core_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text(
        "import asklepios.registry\nfrom asklepios import plugins\nimport asklepios_sdk\n"
    )
    assert _core_imports(sample) == ["line 1: asklepios.registry", "line 2: asklepios"]


@pytest.mark.parametrize("path", _plugin_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_files_do_not_import_the_core(path):
    assert _core_imports(path) == [], (
        f"{path.relative_to(ROOT)} imports the core; plugins may import only asklepios_sdk"
    )
