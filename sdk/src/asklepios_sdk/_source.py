"""Read a definition's docstring from its module's source without importing that module.

Component targets are lazy references (``"package.module:Class"``); listing components shows each
one's first docstring line, which must not cost importing torch. The module file is located with
:func:`importlib.util.find_spec` (which imports the *parent packages* only, so those stay light)
and parsed with :mod:`ast`, cached by path and modification time. A listing reads ~160 docs from
large modules, so a top-level definition's docstring is read from the tokens of its header and
first statement only, and :func:`find_definition` parses only the block of the top-level
``class``/``def`` asked for; both fall back to parsing the whole module when unsure.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import io
import os
import re
import tokenize
from functools import lru_cache

__all__ = ["find_definition", "source_docstring"]


_TOP_LEVEL_STATEMENT = re.compile(r"^(?=[^\s#)\]}])", re.MULTILINE)


@lru_cache(maxsize=256)
def _read(path: str, mtime_ns: int) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


@lru_cache(maxsize=256)
def _parse(path: str, mtime_ns: int) -> ast.Module:
    return ast.parse(_read(path, mtime_ns), filename=path)


_DEFINITION = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+(\w+)", re.MULTILINE)


@lru_cache(maxsize=256)
def _heads(path: str, mtime_ns: int) -> dict[str, int]:
    """Return where the last top-level ``class``/``def`` of each name starts in the file."""
    return {match.group(1): match.start() for match in _DEFINITION.finditer(_read(path, mtime_ns))}


def _leading_docstring(text: str, start: int) -> tuple[bool, str | None]:
    """Read the docstring of the definition at ``start`` from tokens; ``(sure, docstring)``."""
    depth, header_done = 0, False
    try:
        for token in tokenize.generate_tokens(io.StringIO(text[start:]).readline):
            if not header_done:
                if token.type == tokenize.OP and token.string in "([{":
                    depth += 1
                elif token.type == tokenize.OP and token.string in ")]}":
                    depth -= 1
                elif token.type == tokenize.OP and token.string == ":" and depth == 0:
                    header_done = True
                continue
            if token.type in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.COMMENT):
                continue
            if token.type != tokenize.STRING:
                return True, None  # the first statement is not a string: no docstring
            value = ast.literal_eval(token.string)
            return True, inspect.cleandoc(value) if isinstance(value, str) else None
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass
    return False, None


@lru_cache(maxsize=1024)
def _top_level_block(path: str, mtime_ns: int, name: str) -> ast.AST | None:
    """Parse only the last top-level ``class``/``def`` ``name`` of the file (None if unsure)."""
    text = _read(path, mtime_ns)
    start = _heads(path, mtime_ns).get(name)
    if start is None:
        return None
    body = text.find("\n", start)
    after = _TOP_LEVEL_STATEMENT.search(text, body + 1) if body >= 0 else None
    try:
        found = ast.parse(text[start : after.start() if after else len(text)]).body
    except SyntaxError:
        return None
    node = found[0] if len(found) == 1 else None
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return node if node.name == name else None
    return None


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
        mtime_ns = os.stat(path).st_mtime_ns
        first, _, rest = qualname.partition(".")
        block = _top_level_block(path, mtime_ns, first)
        node: ast.AST = _parse(path, mtime_ns) if block is None else block
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    if block is not None:
        if not rest:
            return block
        node, qualname = block, rest
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
    path = _module_file(module)
    if path is not None and "." not in qualname:
        try:
            mtime_ns = os.stat(path).st_mtime_ns
            text = _read(path, mtime_ns)
        except (OSError, UnicodeDecodeError):
            return None
        start = _heads(path, mtime_ns).get(qualname)
        if start is not None:
            sure, doc = _leading_docstring(text, start)
            if sure:
                return doc
    node = find_definition(module, qualname)
    if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    return ast.get_docstring(node)
