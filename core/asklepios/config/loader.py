"""Read config files: YAML or JSON, ``extends:`` inheritance, ``--set`` overrides, key-wise merge.

Nothing here executes code: YAML is read with a ``yaml.SafeLoader`` (no Python tags; ``1e-3`` is a
float as in YAML 1.2), ``--set`` values are parsed as YAML scalars (or flow lists/maps), and no key
is ever imported. Every key remembers the file it came from (:class:`Origins`) so that errors
point at the right file. Files must be UTF-8 text; a key written twice in one mapping is an error
(YAML would silently keep the last one).

Merging (``extends`` and stages) is key-wise: mappings merge recursively, everything else (lists,
scalars) is replaced. A component mapping whose ``type`` changes is replaced as a whole, so the old
component's params never leak into the new one.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from asklepios.errors import ConfigError, ConfigIssue

__all__ = [
    "Origins",
    "apply_overrides",
    "flatten",
    "format_path",
    "merge",
    "parse_override",
    "read_config",
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


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _yaml_document(text: str) -> tuple[Any, dict[PathKey, int], list[tuple[PathKey, int, int]]]:
    """Parse ``text`` safely; return the data, the 1-based line of every key path, duplicates.

    A duplicate is ``(key path, line, line of the first occurrence)``.
    """
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()
    lines: dict[PathKey, int] = {}
    duplicates: list[tuple[PathKey, int, int]] = []
    stack: list[tuple[Any, PathKey]] = [(node, ())] if node is not None else []
    while stack:
        current, prefix = stack.pop()
        if isinstance(current, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in current.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    path = (*prefix, str(key_node.value))
                    line = key_node.start_mark.line + 1
                    if str(key_node.value) in first:
                        duplicates.append((path, line, first[str(key_node.value)]))
                        continue
                    first[str(key_node.value)] = line
                    lines[path] = line
                    stack.append((value_node, path))
        elif isinstance(current, yaml.SequenceNode):
            for i, item in enumerate(current.value):
                path = (*prefix, i)
                lines[path] = item.start_mark.line + 1
                stack.append((item, path))
    return data, lines, sorted(duplicates, key=lambda d: d[1])


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

    def mark(self, path: PathKey, source: str) -> None:
        """Record ``source`` for ``path`` alone (a mapping an override created on its way)."""
        self._by_path[path] = source

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


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Return ``{dotted key: leaf value}`` of a plain config, in the keys ``--set`` takes.

    Mappings and lists of mappings are entered; a list item is keyed by its ``name`` where it has
    one (``stages.classifier.train.epochs``), else by its index. Other lists are leaf values.
    """
    if isinstance(data, Mapping) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data and all(isinstance(v, Mapping) for v in data):
        names = [v.get("name") for v in data]
        named = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        out = {}
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}.{names[i] if named else i}"))
        return out
    return {prefix: data} if prefix else {}


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


def _issue(
    file: str,
    message: str,
    suggestion: str | None = None,
    path: str = "",
    line: int | None = None,
    source: str | None = None,
) -> ConfigError:
    """Return a one-problem error whose header names ``source`` (default: ``file``)."""
    issue = ConfigIssue(file=file, path=path, message=message, suggestion=suggestion, line=line)
    return ConfigError([issue], source or file)


def _text(data: bytes, shown: str) -> str:
    """Decode a config file's bytes as UTF-8 (a BOM is allowed) or say where it is not text."""
    if b"\x00" in data:
        raise _issue(
            shown,
            "this is a binary file (it contains NUL bytes), not a YAML or JSON config",
            "check the path: a config is a UTF-8 text file (.yaml, .yml or .json)",
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise _issue(
            shown,
            f"not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, column {column} "
            "cannot be decoded",
            "save the file as UTF-8 (configs are UTF-8 YAML or JSON)",
            line=line,
        ) from None


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r} in a JSON object")
        out[key] = value
    return out


def _json_document(text: str) -> tuple[Any, dict[PathKey, int], list[tuple[PathKey, int, int]]]:
    """Parse JSON; locate keys (and keys written twice) through YAML's node tree.

    A JSON document is a YAML flow document, so the YAML walk gives each key path its line;
    the values come from ``json``. Where YAML 1.1 cannot read the text (escaped surrogate pairs,
    as ``json.dumps`` writes characters beyond the BMP), keys go unlocated and a key written
    twice is still an error.
    """
    data = json.loads(text)  # syntax errors carry their own line and column
    try:
        _, lines, duplicates = _yaml_document(text)
    except yaml.YAMLError:
        json.loads(text, object_pairs_hook=_json_object)
        return data, {}, []
    return data, lines, duplicates


def _read_document(path: Path, shown: str) -> tuple[dict[str, Any], dict[PathKey, int]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _issue(shown, f"file not found: {path}", "check the path") from None
    except OSError as err:
        raise _issue(shown, f"cannot read the file: {err}") from err
    text = _text(raw, shown)
    lines: dict[PathKey, int] = {}
    duplicates: list[tuple[PathKey, int, int]] = []
    try:
        read = _json_document if path.suffix.lower() == ".json" else _yaml_document
        data, lines, duplicates = read(text)
    except json.JSONDecodeError as err:
        raise _issue(
            shown, f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    except ValueError as err:  # a duplicate key in a JSON object
        raise _issue(shown, str(err), "write each key once") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise _issue(
            shown,
            f"invalid YAML{where}: {problem}",
            "configs are plain YAML: no Python tags (!!python/...), no expressions",
            line=mark.line + 1 if mark else None,
        ) from None
    if duplicates:
        issues = [
            ConfigIssue(
                file=shown,
                path=format_path(key),
                line=line,
                message=f"key written twice (first at line {first}); the parser would keep only "
                "the last one",
                suggestion="write each key once (merge the two mappings)",
            )
            for key, line, first in duplicates
        ]
        raise ConfigError(issues, shown)
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


def _parents(
    doc: dict[str, Any], lines: dict[PathKey, int], shown: str
) -> list[tuple[str, PathKey]]:
    """Pop ``extends`` from ``doc``; return each parent with its key path in this file."""
    parents = doc.pop("extends", None)
    if parents is None:
        return []
    if isinstance(parents, str):
        return [(parents, ("extends",))]
    if isinstance(parents, list) and all(isinstance(p, str) for p in parents):
        return [(parent, ("extends", i)) for i, parent in enumerate(parents)]
    raise _issue(
        shown,
        "'extends' must be a file path or a list of file paths",
        path="extends",
        line=lines.get(("extends",)),
    )


def read_config(path: str | Path, _chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Origins]:
    """Read ``path`` and everything it ``extends``, merged, with the origin of every key.

    ``extends`` is a path (or list of paths, merged in order) relative to the file that names it;
    the file's own keys win over the inherited ones. Cycles and missing parents are errors of
    the file (and line) that names them.
    """
    file = Path(path).expanduser().resolve()
    shown = _display(file)
    if not _chain and not file.exists():
        given = Path(path).expanduser()
        where = "" if given.is_absolute() else f" ('{path}' is relative to the working directory)"
        raise _issue(shown, f"file not found: {file}{where}", "check the path")
    doc, lines = _read_document(file, shown)
    merged: dict[str, Any] = {}
    origins = Origins(shown)
    for parent, key in _parents(doc, lines, shown):
        target = (file.parent / Path(parent).expanduser()).resolve()
        line = lines.get(key) or lines.get(("extends",))
        if target in (*_chain, file):
            cycle = " -> ".join(_display(p) for p in (*_chain, file, target))
            raise _issue(
                shown, f"'extends' forms a cycle: {cycle}", path=format_path(key), line=line
            )
        if not target.is_file():
            raise _issue(
                shown,
                f"parent config '{parent}' not found: {target} (an 'extends' path is relative "
                f"to the folder of the file that names it: {file.parent})",
                "check the path",
                path=format_path(key),
                line=line,
            )
        parent_doc, parent_origins = read_config(target, (*_chain, file))
        merged = merge(merged, parent_doc)
        origins.update(parent_origins)
    merged = merge(merged, doc)
    for name, value in doc.items():
        origins.record(value, shown, (str(name),))
    origins.record_lines(lines, shown)
    origins.root = shown
    return merged, origins


def _list_index(node: list[Any], key: str) -> int | None:
    """Return the index ``key`` names in a list: a number, or the ``name`` of an item (stages)."""
    if key.isdigit():
        return int(key)
    names = [item.get("name") if isinstance(item, Mapping) else None for item in node]
    return names.index(key) if key in names else None


def _not_an_index(node: list[Any], key: str) -> str:
    names = [str(i["name"]) for i in node if isinstance(i, Mapping) and "name" in i]
    if names:
        return (
            f"'{key}' is neither an index nor a name of this list ({len(node)} item(s): "
            f"{', '.join(names)})"
        )
    return f"'{key}' is not an index of this list of {len(node)} item(s)"


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


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str], origins: Origins
) -> list[tuple[str, PathKey]]:
    """Apply ``--set`` overrides in place, in order; return each with the key path it set.

    List items are addressed by index, or by their ``name`` (``stages.classifier.train.epochs``).
    """
    issues: list[ConfigIssue] = []
    applied: list[tuple[str, PathKey]] = []
    for text in overrides:
        try:
            keys, value = parse_override(text)
        except ConfigError as err:
            issues.extend(err.issues)
            continue
        node: Any = raw
        path: list[str | int] = []
        created: list[PathKey] = []
        failed = False
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            step: str | int = key
            if isinstance(node, list):
                index = _list_index(node, key)
                if index is None or index > len(node) - (0 if last else 1):
                    issues.append(
                        ConfigIssue(f"--set {text}", format_path(path), _not_an_index(node, key))
                    )
                    failed = True
                    break
                step = index
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
                        created.append((*path, key))
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
            for prefix in created:
                origins.mark(prefix, f"--set {text}")
            origins.record(value, f"--set {text}", tuple(path))
            applied.append((text, tuple(path)))
    if issues:
        raise ConfigError(issues, "--set")
    return applied
