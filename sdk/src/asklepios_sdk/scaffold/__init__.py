"""Write a ready-to-install asklepios plugin package: ``asklepios new-plugin NAME``.

The package follows the registration contract of SDK 0.2: a ``pyproject.toml`` with the entry
point, the core and SDK ranges and a ``[test]`` extra; a hook module making one lazy
``register(name, "package.module:Class", ClassParams)`` call per component; a light ``params.py``;
one small real example component (constructed as ``Class(params, ctx)``, with a test) per requested
kind; ``py.typed``; a README whose component table is what
:func:`~asklepios_sdk.testing.component_table_rows` gives, with a config example and a citation
block; ``tests/conftest.py`` switching on the conformance kit and ``tests/test_readme.py`` keeping
the table current.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from string import Template

from asklepios_sdk.errors import AsklepiosError
from asklepios_sdk.registration import PLUGIN_ID_PATTERN
from asklepios_sdk.scaffold import _files
from asklepios_sdk.scaffold._kinds import KINDS

__all__ = [
    "KINDS",
    "MAX_ID_LENGTH",
    "ScaffoldError",
    "default_dist_name",
    "new_plugin",
    "next_steps",
    "plugin_files",
]

MAX_ID_LENGTH = 32
"""The longest plugin id the scaffold writes code for (that code stays within 100 columns)."""

_DIST_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
"""A valid distribution (project) name, as the packaging specifications define it."""


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


def default_dist_name(name: str) -> str:
    """Return the conventional distribution name of plugin ``name``: ``asklepios-<id>``."""
    return f"asklepios-{name.replace('_', '-')}"


def _dist_name(name: str, dist_name: str | None) -> str:
    if dist_name is None:
        return default_dist_name(name)
    if not _DIST_NAME.match(dist_name):
        raise ScaffoldError(
            f"distribution name {dist_name!r} is not a valid project name (letters, digits, "
            "'-', '_' and '.', starting and ending with a letter or digit); e.g. "
            f"'{default_dist_name(name)}' (the convention) or 'acme-{name.replace('_', '-')}'"
        )
    return dist_name


def plugin_files(
    name: str,
    kinds: Iterable[str],
    author: str | None = None,
    *,
    dist_name: str | None = None,
) -> dict[str, str]:
    """Return ``{relative path: text}`` of the plugin package ``new_plugin`` writes.

    Raises:
        ScaffoldError: a bad plugin id, kind or distribution name.
    """
    if not PLUGIN_ID_PATTERN.match(name) or name == "core":
        raise ScaffoldError(
            f"plugin id '{name}' must be lowercase snake_case (letters, digits, _), start with a "
            "letter and not be 'core'; e.g. 'my_lab'"
        )
    if len(name) > MAX_ID_LENGTH:
        raise ScaffoldError(
            f"plugin id '{name}' has {len(name)} characters; the scaffold takes at most "
            f"{MAX_ID_LENGTH} (every config names components as '<id>.<name>', and the generated "
            "code keeps to 100 columns); choose a shorter id"
        )
    selected = _kinds(kinds)
    package = f"asklepios_{name}"
    values = {
        "plugin": name,
        "package": package,
        "dist": _dist_name(name, dist_name),
        "description": f"{', '.join(selected)} components for asklepios",
        "author": author or f"The {name} authors",
    }
    templates = {
        "pyproject.toml": _files.pyproject(selected),
        "configs/example.yaml": _files.config(selected),
        f"src/{package}/__init__.py": _files.init(),
        f"src/{package}/py.typed": "",
        f"src/{package}/hooks.py": _files.hooks(selected, package),
        f"src/{package}/CITATION.cff": _files.citation_cff(),
        "tests/conftest.py": _files.conftest(),
        "tests/test_readme.py": _files.readme_test(),
    }
    params = _files.params(selected)
    if params is not None:
        templates[f"src/{package}/params.py"] = params
    for kind in selected:
        template = KINDS[kind]
        templates[f"src/{package}/{template.module}.py"] = template.code
        templates[f"tests/test_{template.module}.py"] = template.test
    files = {path: Template(text).substitute(values) for path, text in templates.items()}
    docs = {
        kind: _files.class_doc(files[f"src/{package}/{KINDS[kind].module}.py"], KINDS[kind].cls)
        for kind in selected
    }
    files["README.md"] = _files.readme(selected, values, docs)
    return files


def next_steps(path: str | os.PathLike[str]) -> str:
    """Return the shell line that installs a generated plugin with its tests and runs them."""
    return f"cd {shlex.quote(str(path))} && pip install -e '.[test]' && python -m pytest"


def new_plugin(
    name: str,
    kinds: Iterable[str] = ("loss",),
    directory: str | os.PathLike[str] = ".",
    *,
    author: str | None = None,
    dist_name: str | None = None,
) -> Path:
    """Write plugin ``name`` into ``directory/name`` and return that path.

    Args:
        name: the plugin id (lowercase snake_case): the entry-point name, the prefix of every
            component id, and the package ``asklepios_<name>``.
        kinds: component kinds to write an example of (see :data:`KINDS`).
        directory: where the package directory is created.
        author: the name in ``CITATION.cff`` and the README's citation block.
        dist_name: the distribution (PyPI project) name; by convention, and by default,
            ``asklepios-<name>`` with ``-`` for ``_``. asklepios finds plugins through their
            entry point, not this name; the generated ``__version__`` reads it.

    Raises:
        ScaffoldError: bad name, kind or distribution name, or the target exists and is not
            empty. Nothing is written in that case; the package appears at once, complete, or
            not at all.
    """
    files = plugin_files(name, kinds, author, dist_name=dist_name)
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
