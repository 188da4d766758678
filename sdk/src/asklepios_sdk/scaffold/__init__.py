"""Write a ready-to-install asklepios plugin package: ``asklepios new-plugin NAME``.

The package has a ``pyproject.toml`` with the entry point and the core range, a hook module, one
small real example component (with a test) per requested kind, a README with a citation block and
a config example, and ``tests/conftest.py`` switching on the conformance kit.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from string import Template

from asklepios_sdk.errors import AsklepiosError
from asklepios_sdk.scaffold import _files
from asklepios_sdk.scaffold._kinds import KINDS

__all__ = ["KINDS", "ScaffoldError", "new_plugin", "plugin_files"]

_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class ScaffoldError(AsklepiosError):
    """``new-plugin`` was given a name, kinds or directory it cannot use."""


def _kinds(kinds: Iterable[str]) -> list[str]:
    wanted = [k.strip() for k in kinds if k.strip()]
    if not wanted:
        raise ScaffoldError(f"give at least one kind; known: {','.join(KINDS)}")
    for kind in wanted:
        if kind not in KINDS:
            close = difflib.get_close_matches(kind, list(KINDS), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ScaffoldError(f"unknown kind '{kind}'; {hint}known: {','.join(KINDS)}")
    return [k for k in KINDS if k in wanted]


def plugin_files(name: str, kinds: Iterable[str], author: str | None = None) -> dict[str, str]:
    """Return ``{relative path: text}`` of the plugin package ``new_plugin`` writes."""
    if not _ID.match(name) or name == "core":
        raise ScaffoldError(
            f"plugin id '{name}' must be lowercase snake_case (letters, digits, _), start with a "
            "letter and not be 'core'; e.g. 'my_lab'"
        )
    selected = _kinds(kinds)
    package = f"asklepios_{name}"
    values = {
        "plugin": name,
        "package": package,
        "dist": f"asklepios-{name.replace('_', '-')}",
        "description": f"{', '.join(selected)} components for asklepios",
        "author": author or f"The {name} authors",
    }
    files = {
        "pyproject.toml": _files.pyproject(selected),
        "README.md": _files.readme(selected),
        "configs/example.yaml": _files.config(selected),
        f"src/{package}/__init__.py": _files.init(),
        f"src/{package}/py.typed": "",
        f"src/{package}/hooks.py": _files.hooks(selected),
        f"src/{package}/CITATION.cff": _files.citation_cff(),
        "tests/conftest.py": _files.conftest(),
    }
    for kind in selected:
        template = KINDS[kind]
        files[f"src/{package}/{template.module}.py"] = template.code
        files[f"tests/test_{template.module}.py"] = template.test
    return {path: Template(text).substitute(values) for path, text in files.items()}


def new_plugin(
    name: str,
    kinds: Iterable[str] = ("loss",),
    directory: str | os.PathLike[str] = ".",
    *,
    author: str | None = None,
) -> Path:
    """Write plugin ``name`` into ``directory/name`` and return that path.

    Args:
        name: the plugin id (lowercase snake_case); the package is ``asklepios_<name>``, the
            distribution ``asklepios-<name>``.
        kinds: component kinds to write an example of (see :data:`KINDS`).
        directory: where the package directory is created.
        author: the name in ``CITATION.cff`` and the README's citation block.

    Raises:
        ScaffoldError: bad name or kind, or the target exists and is not empty. Nothing is
            written in that case; the package appears at once, complete, or not at all.
    """
    files = plugin_files(name, kinds, author)
    target = Path(directory) / name
    if target.exists() and any(target.iterdir()):
        raise ScaffoldError(f"{target} exists and is not empty; choose another --dir or name")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
