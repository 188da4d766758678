"""Plugins import only ``asklepios_sdk``; their tests and benchmarks at most the Python API."""

from __future__ import annotations

import ast
import re
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
    for node in ast.walk(tree):  # code run elsewhere: a script a test writes, python -c ...
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [
                f"line {node.lineno}: {match.group(1)} (in a string)"
                for match in _CODE_IMPORT.finditer(node.value)
            ]
    return found


_CODE_IMPORT = re.compile(r"^\s*(?:from|import)\s+(asklepios(?:\.\w+)*)\b", re.MULTILINE)


def test_the_check_sees_core_imports(tmp_path):
    sample = tmp_path / "m.py"
    sample.write_text(
        "import asklepios.registry\nfrom asklepios import plugins\nimport asklepios_sdk\n"
        'RUNNER = """\nimport os\nfrom asklepios.cli import run_command\n"""\n'
    )
    assert _core_imports(sample) == [
        "line 1: asklepios.registry",
        "line 2: asklepios",
        "line 4: asklepios.cli (in a string)",
    ]


PUBLIC_API = ("asklepios", "asklepios.api")
"""What a plugin's own tests and benchmarks may import from the core: the Python API."""


@pytest.mark.parametrize("path", _plugin_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_plugin_files_do_not_import_the_core(path):
    found = _core_imports(path)
    if "src" not in path.relative_to(ROOT).parts:  # a plugin's tests and benchmarks
        found = [line for line in found if line.split(": ", 1)[1].split()[0] not in PUBLIC_API]
    assert found == [], (
        f"{path.relative_to(ROOT)} imports the core; plugin packages import only asklepios_sdk, "
        f"their tests and benchmarks the Python API ({', '.join(PUBLIC_API)}) at most"
    )


def _class_attributes(path: Path, name: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [
        f"line {item.lineno}: {node.name}.{name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        for item in node.body
        if isinstance(item, ast.Assign | ast.AnnAssign)
        and name
        in {
            t.id
            for t in (item.targets if isinstance(item, ast.Assign) else [item.target])
            if isinstance(t, ast.Name)
        }
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in _plugin_sources() if "src" in p.relative_to(ROOT).parts],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_components_do_not_hard_code_their_id(path):
    found = _class_attributes(path, "component_id")
    assert found == [], (
        f"{path.relative_to(ROOT)}: {found}: the id is the registration's (register(name, ...)); "
        "a class attribute repeating it goes stale on a rename"
    )


def _core_import_graph() -> dict[str, set[str]]:
    """Return first-level module -> the first-level modules it imports (TYPE_CHECKING aside)."""
    core = ROOT / "core" / "asklepios"
    edges: dict[str, set[str]] = {}
    for path in core.rglob("*.py"):
        rel = path.relative_to(core).with_suffix("").parts
        unit = rel[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
                if node.module == "asklepios":
                    names = [f"asklepios.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "asklepios" and len(parts) > 1 and parts[1] != unit:
                    edges.setdefault(unit, set()).add(parts[1])
    return edges


def test_core_modules_import_one_way():
    edges = _core_import_graph()

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            for nxt in edges.get(stack.pop(), ()):
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    cycles = sorted((a, b) for a, targets in edges.items() for b in targets if reaches(b, a))
    assert not cycles, f"core modules import each other (directly or through others): {cycles}"
    assert "plugins" not in edges.get("registry", set()), "the registry must not know the host"
    assert "engine" not in edges.get("build", set()), "build sits below the engine"
