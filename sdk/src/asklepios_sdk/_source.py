"""Read a definition's docstring from its module's source without importing that module.

Component targets are lazy references (``"package.module:Class"``); listing components shows each
one's first docstring line, which must not cost importing torch. The module file is located with
:func:`importlib.util.find_spec` (which imports the *parent packages* only, so those stay light)
and parsed with :mod:`ast`; parsed modules are cached by path and modification time.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from functools import lru_cache

__all__ = ["find_definition", "source_docstring"]


@lru_cache(maxsize=256)
def _parse(path: str, mtime_ns: int) -> ast.Module:
    with open(path, encoding="utf-8") as handle:
        return ast.parse(handle.read(), filename=path)


def _module_file(module: str) -> str | None:
    """Return the source file of ``module``, or None when it has none (missing, compiled)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec is not None else None
    if not origin or not origin.endswith(".py") or not os.path.isfile(origin):
        return None
    return origin


def find_definition(module: str, qualname: str) -> ast.AST | None:
    """Return the ``class``/``def`` node of ``qualname`` in ``module``'s source, or None.

    ``qualname`` may be dotted through classes (``"Outer.Inner"``). Names bound any other way
    (assignment, import) are not followed: their docs come from an explicit ``doc=``.
    """
    path = _module_file(module)
    if path is None:
        return None
    try:
        node: ast.AST = _parse(path, os.stat(path).st_mtime_ns)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    for part in qualname.split("."):
        body = getattr(node, "body", [])
        found = [
            child
            for child in body
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and child.name == part
        ]
        if not found:
            return None
        node = found[-1]  # a later definition shadows an earlier one, as at import
    return node


def source_docstring(module: str, qualname: str) -> str | None:
    """Return the docstring of ``module:qualname`` read from source, or None if it has none."""
    node = find_definition(module, qualname)
    if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    return ast.get_docstring(node)
