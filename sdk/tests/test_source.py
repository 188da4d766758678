"""Docstrings read from source without importing: the token fast path equals ``ast``'s answer."""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest
from asklepios_sdk._source import find_definition, source_docstring

SOURCE = '''
"""A module."""
import torch  # never imported by the reader


@decorator(
    with_args=True,
)
class Decorated(
    Base,
    metaclass=Meta,
):
    """Build a decorated class with a multi-line header.

    More text.
    """

    value = 1


class OneLine: """Sit on one line."""


class NoDoc:
    x = "not a docstring"


class Raw:
    r\'\'\'Keep a raw \\d docstring.\'\'\'


def function(a: int = (1, 2)[0]) -> int:
    # a comment first
    """Return a number from a function."""
    return a


async def coroutine():
    """Await nothing."""


class Shadowed:
    """Say the first definition."""


class Shadowed:  # noqa: F811
    """Say the later definition, which wins as at import."""


class Outer:
    """Hold an inner class."""

    class Inner:
        """Be found through a dotted name."""


class Continued:
    """Survive a string that continues at column 0."""

    text = """
not indented
"""
'''

NAMES = [
    "Decorated",
    "OneLine",
    "NoDoc",
    "Raw",
    "function",
    "coroutine",
    "Shadowed",
    "Outer",
    "Outer.Inner",
    "Continued",
    "Missing",
]


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"source_probe_{abs(hash(tmp_path)) % 10**8}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _reference(path: Path, qualname: str) -> str | None:
    node: ast.AST = ast.parse(path.read_text())
    for part in qualname.split("."):
        found = [
            child
            for child in getattr(node, "body", [])
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and child.name == part
        ]
        if not found:
            return None
        node = found[-1]
    assert isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    return ast.get_docstring(node)


@pytest.mark.parametrize("qualname", NAMES)
def test_docstrings_equal_the_full_parse(module: str, tmp_path: Path, qualname: str) -> None:
    expected = _reference(tmp_path / f"{module}.py", qualname)
    assert source_docstring(module, qualname) == expected


def test_the_fast_path_answers_what_a_reader_expects(module: str) -> None:
    assert source_docstring(module, "Shadowed") == (
        "Say the later definition, which wins as at import."
    )
    assert source_docstring(module, "Decorated") == (
        "Build a decorated class with a multi-line header.\n\nMore text."
    )
    assert source_docstring(module, "NoDoc") is None
    assert source_docstring(module, "function") == "Return a number from a function."
    assert module not in sys.modules


def test_find_definition_parses_the_block_or_the_module(module: str) -> None:
    node = find_definition(module, "Outer.Inner")
    assert isinstance(node, ast.ClassDef) and node.name == "Inner"
    node = find_definition(module, "Continued")
    assert isinstance(node, ast.ClassDef) and [n.__class__ for n in node.body][-1] is ast.Assign
    assert find_definition(module, "Missing") is None
