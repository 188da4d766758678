"""Local paths in configs: one rule for data and weights, checked before anything is built.

A params field typed :data:`asklepios_sdk.params.LocalFile`, ``LocalDir`` or ``LocalPath`` (and
``weights.path`` of every component) holds a path on this machine. A relative value is resolved
against the folder of the config file that wrote it (the file that wrote it through
``extends``, not the one that was loaded); a ``--set`` value, or one in an in-memory config,
against the working directory; ``~`` is expanded. Files and folders must exist and be readable,
and every message names the absolute path checked and what a relative value was relative to.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asklepios_sdk.params import LocalPathKind
from pydantic import BaseModel

__all__ = ["PATH_RULE", "LocalPathRef", "check_local_path", "resolve_local_paths"]

PATH_RULE = (
    "a relative path is relative to the config file that writes it; one given with --set, to "
    "the working directory"
)
"""The rule, as the hint under every path problem states it."""

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class LocalPathRef:
    """One local path of a config, as written and as resolved.

    Attributes:
        where: key path below the component (``("root",)``, ``("weights", "path")``).
        kind: ``"file"``, ``"dir"`` or ``"path"`` (never checked).
        given: the value as written.
        resolved: the absolute, normalised path.
        base: what a relative ``given`` was resolved against, in words (None when absolute).
    """

    where: KeyPath
    kind: str
    given: str
    resolved: str
    base: str | None


def _kind_of(metadata: typing.Iterable[Any]) -> str | None:
    for item in metadata:
        if isinstance(item, LocalPathKind):
            return item.kind
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _walk(annotation: Any, value: Any, where: KeyPath, found: list[tuple[KeyPath, str]]) -> None:
    """Collect ``(key path, kind)`` of every local-path value in ``value`` typed ``annotation``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        kind = _kind_of(annotation.__metadata__)
        if kind is not None:
            if isinstance(value, str):
                found.append((where, kind))
            return
        _walk(typing.get_args(annotation)[0], value, where, found)
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            before = len(found)
            _walk(arg, value, where, found)
            if len(found) > before:
                return
    elif origin in (list, tuple, set, frozenset) and isinstance(value, list):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        for i, item in enumerate(value):
            if args:
                _walk(args[min(i, len(args) - 1)], item, (*where, i), found)
    elif origin is dict and isinstance(value, Mapping):
        key_and_value = typing.get_args(annotation)
        for key, item in value.items():
            if len(key_and_value) == 2:
                _walk(key_and_value[1], item, (*where, str(key)), found)
    elif _is_model(annotation) and isinstance(value, Mapping):
        model_paths(annotation, value, where, found)


def model_paths(
    model: type[BaseModel],
    data: Mapping[str, Any],
    where: KeyPath = (),
    found: list[tuple[KeyPath, str]] | None = None,
) -> list[tuple[KeyPath, str]]:
    """Return ``(key path, kind)`` of every local-path value in ``data`` validated by ``model``."""
    found = [] if found is None else found
    for name, info in model.model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        kind = _kind_of(info.metadata)
        if kind is not None:
            if isinstance(data[key], str):
                found.append(((*where, key), kind))
            continue
        _walk(info.annotation, data[key], (*where, key), found)
    return found


def _resolve(given: str, origin: str) -> tuple[str, str | None]:
    """Return the absolute path of ``given`` written by ``origin``, and what it was relative to."""
    expanded = os.path.expanduser(given)
    if os.path.isabs(expanded):
        return os.path.normpath(expanded), None
    if origin.startswith("--set "):
        base, words = Path.cwd(), f"the working directory (given with {origin})"
    elif origin.startswith("<"):
        base, words = Path.cwd(), f"the working directory ({origin} is not a file)"
    else:
        base = Path(origin).resolve().parent
        words = f"the folder of {origin}"
    return os.path.normpath(base / expanded), f"{words}: {base}"


def _get(node: Any, path: KeyPath) -> Any:
    for part in path:
        node = node[part]
    return node


def _put(node: Any, path: KeyPath, value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value


def resolve_local_paths(
    model: type[BaseModel], data: dict[str, Any], origin_of: Callable[[KeyPath], str]
) -> list[LocalPathRef]:
    """Make every local path of ``data`` (validated by ``model``) absolute, in place.

    Args:
        model: the params model (or :class:`~asklepios_sdk.WeightsSpec`) of ``data``.
        data: the raw mapping written in the config.
        origin_of: the file (or ``--set ...`` override) that wrote a key path of ``data``.

    Returns:
        Every local path found, with its resolution.
    """
    refs = []
    for where, kind in model_paths(model, data):
        given = _get(data, where)
        resolved, base = _resolve(given, origin_of(where))
        if resolved != given:
            _put(data, where, resolved)
        refs.append(LocalPathRef(where, kind, given, resolved, base))
    return refs


def check_local_path(ref: LocalPathRef) -> str | None:
    """Return what is wrong with a file or folder path (None when it is there and readable)."""
    if ref.kind == "path":
        return None
    path = ref.resolved
    relative = f" ('{ref.given}' is relative to {ref.base})" if ref.base else ""
    if ref.kind == "file":
        if not os.path.exists(path):
            problem = f"file not found: {path}"
        elif os.path.isdir(path):
            problem = f"{path} is a folder; a file is expected here"
        elif not os.access(path, os.R_OK):
            problem = f"file {path} is not readable (permissions)"
        else:
            return None
    else:
        if not os.path.exists(path):
            problem = f"folder not found: {path}"
        elif not os.path.isdir(path):
            problem = f"{path} is a file; a folder is expected here"
        elif not os.access(path, os.R_OK | os.X_OK):
            problem = f"folder {path} is not readable (permissions)"
        else:
            return None
    return problem + relative
