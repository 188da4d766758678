"""Read config files: YAML or JSON, ``extends:`` inheritance, ``--set`` overrides, key-wise merge.

Nothing here executes code: YAML is read with a ``yaml.SafeLoader`` (no Python tags; ``1e-3`` is a
float as in YAML 1.2), ``--set`` values are parsed as YAML scalars (or flow lists/maps), and no key
is ever imported. Every key remembers the file it came from (:class:`Origins`) so that errors
point at the right file.

Merging (``extends`` and stages) is key-wise: mappings merge recursively, everything else (lists,
scalars) is replaced. A component mapping whose ``type`` changes is replaced as a whole, so the old
component's params never leak into the new one.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from asklepios.errors import ConfigError, ConfigIssue

__all__ = [
    "Origins",
    "apply_overrides",
    "format_path",
    "merge",
    "parse_override",
    "read_config",
    "resolve_weights_paths",
]

PathKey = tuple[str | int, ...]


class _SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML loader (libyaml when available) that reads ``1e-3`` as a float, as YAML 1.2."""


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader subclass: no Python tags


def _yaml_document(text: str) -> tuple[Any, dict[PathKey, int]]:
    """Parse ``text`` safely and return the data and the 1-based line of every key path."""
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[PathKey, int] = {}
    stack: list[tuple[Any, PathKey]] = [(node, ())] if node is not None else []
    while stack:
        current, prefix = stack.pop()
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode):
                    path = (*prefix, str(key_node.value))
                    lines[path] = key_node.start_mark.line + 1
                    stack.append((value_node, path))
        elif isinstance(current, yaml.SequenceNode):
            for i, item in enumerate(current.value):
                path = (*prefix, i)
                lines[path] = item.start_mark.line + 1
                stack.append((item, path))
    return data, lines


def format_path(path: Iterable[str | int]) -> str:
    """Return ``data.transforms.train[0].p`` for ``("data", "transforms", "train", 0, "p")``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Origins:
    """Which file (or ``--set`` override) each key path of a merged config came from."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._by_path: dict[PathKey, str] = {}
        self._lines: dict[PathKey, tuple[str, int]] = {}

    def record_lines(self, lines: Mapping[PathKey, int], source: str) -> None:
        """Remember the line of each key path of ``source`` (later sources win)."""
        for path, line in lines.items():
            self._lines[path] = (source, line)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """Return the line of the deepest prefix of ``path`` written in its file, if known."""
        key = tuple(path)
        source = self.file_of(key)
        for end in range(len(key), 0, -1):
            found = self._lines.get(key[:end])
            if found is not None and found[0] == source:
                return found[1]
        return None

    def record(self, node: Any, source: str, prefix: PathKey = ()) -> None:
        """Record ``source`` for ``prefix`` and every key path below it in ``node``."""
        self._by_path[prefix] = source
        if isinstance(node, Mapping):
            for key, value in node.items():
                self.record(value, source, (*prefix, str(key)))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                self.record(value, source, (*prefix, i))

    def update(self, other: Origins) -> None:
        """Take over every path ``other`` knows (``other`` wins)."""
        self._by_path.update(other._by_path)
        self._lines.update(other._lines)

    def file_of(self, path: Sequence[str | int]) -> str:
        """Return the source of the deepest recorded prefix of ``path`` (the root file if none)."""
        key = tuple(path)
        for end in range(len(key), 0, -1):
            found = self._by_path.get(key[:end])
            if found is not None:
                return found
        return self.root


def merge(base: Any, override: Any) -> Any:
    """Merge ``override`` over ``base`` key-wise and return a new object (inputs unchanged)."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        if "type" in base and "type" in override and base["type"] != override["type"]:
            return copy.deepcopy(dict(override))
        out = {key: copy.deepcopy(value) for key, value in base.items()}
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(override)


def _issue(file: str, message: str, suggestion: str | None = None, path: str = "") -> ConfigError:
    return ConfigError([ConfigIssue(file=file, path=path, message=message, suggestion=suggestion)])


def _read_document(path: Path, shown: str) -> tuple[dict[str, Any], dict[PathKey, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _issue(shown, "file not found", "check the path (relative to this file)") from None
    except OSError as err:
        raise _issue(shown, f"cannot read the file: {err}") from err
    lines: dict[PathKey, int] = {}
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data, lines = _yaml_document(text)
    except json.JSONDecodeError as err:
        raise _issue(
            shown, f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise _issue(
            shown,
            f"invalid YAML{where}: {problem}",
            "configs are plain YAML: no Python tags (!!python/...), no expressions",
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _issue(shown, f"a config must be a mapping of keys, got {type(data).__name__}")
    return data, lines


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def read_config(path: str | Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Origins]:
    """Read ``path`` and everything it ``extends``, merged, with the origin of every key.

    ``extends`` is a path (or list of paths, merged in order) relative to the file that names it;
    the file's own keys win over the inherited ones. Cycles are errors.
    """
    file = Path(path).expanduser().resolve()
    shown = _display(file)
    if file in _chain:
        cycle = " -> ".join(_display(p) for p in (*_chain, file))
        raise _issue(shown, f"'extends' forms a cycle: {cycle}", path="extends")
    doc, lines = _read_document(file, shown)
    parents = doc.pop("extends", None)
    if parents is None:
        parents = []
    elif isinstance(parents, str):
        parents = [parents]
    elif not (isinstance(parents, list) and all(isinstance(p, str) for p in parents)):
        raise _issue(shown, "'extends' must be a file path or a list of file paths", path="extends")
    merged: dict[str, Any] = {}
    origins = Origins(shown)
    for parent in parents:
        parent_doc, parent_origins = read_config(file.parent / parent, (*_chain, file))
        merged = merge(merged, parent_doc)
        origins.update(parent_origins)
    merged = merge(merged, doc)
    for key, value in doc.items():
        origins.record(value, shown, (str(key),))
    origins.record_lines(lines, shown)
    origins.root = shown
    return merged, origins


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into the key path and the YAML-parsed scalar (or flow collection)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise _issue(
            f"--set {text}",
            "an override is written KEY.PATH=VALUE",
            "e.g. --set train.epochs=5 or --set loss.gamma=2.0",
        )
    try:
        parsed = _yaml_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise _issue(
            f"--set {text}",
            f"the value is not plain YAML: {problem}",
            "values are YAML scalars or flow lists/maps; Python tags are not allowed",
        ) from None
    return key.split("."), parsed


def resolve_weights_paths(raw: Any, origins: Origins, prefix: PathKey = ()) -> None:
    """Make every relative ``weights.path`` of a component absolute, in place.

    A path written in a file is relative to that file's folder (the file that wrote it, when it
    came through ``extends``); one given with ``--set`` is relative to the working directory.
    Absolute paths (``~`` included) are left as written.
    """
    if isinstance(raw, dict):
        weights = raw.get("weights")
        if "type" in raw and isinstance(weights, dict) and isinstance(weights.get("path"), str):
            given = Path(weights["path"])
            if not given.expanduser().is_absolute():
                origin = origins.file_of((*prefix, "weights", "path"))
                base = Path.cwd() if origin.startswith("--set ") else Path(origin).resolve().parent
                weights["path"] = os.path.normpath(base / given)
        for key, value in raw.items():
            resolve_weights_paths(value, origins, (*prefix, str(key)))
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            resolve_weights_paths(value, origins, (*prefix, i))


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str], origins: Origins) -> None:
    """Apply ``--set`` overrides in place, in order; list items are addressed by index."""
    issues: list[ConfigIssue] = []
    for text in overrides:
        try:
            keys, value = parse_override(text)
        except ConfigError as err:
            issues.extend(err.issues)
            continue
        node: Any = raw
        path: list[str | int] = []
        failed = False
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            step: str | int = key
            if isinstance(node, list):
                if not key.isdigit() or int(key) > len(node) - (0 if last else 1):
                    issues.append(
                        ConfigIssue(
                            f"--set {text}",
                            format_path(path),
                            f"'{key}' is not an index of this list of {len(node)} item(s)",
                        )
                    )
                    failed = True
                    break
                step = int(key)
                if last:
                    if step == len(node):
                        node.append(value)
                    else:
                        node[step] = value
                else:
                    node = node[step]
            elif isinstance(node, dict):
                if last:
                    node[key] = value
                else:
                    if node.get(key) is None:
                        node[key] = {}
                    node = node[key]
            else:
                issues.append(
                    ConfigIssue(
                        f"--set {text}",
                        format_path(path),
                        f"cannot set '{key}' inside a {type(node).__name__} value",
                    )
                )
                failed = True
                break
            path.append(step)
        if not failed:
            origins.record(value, f"--set {text}", tuple(path))
    if issues:
        raise ConfigError(issues)
