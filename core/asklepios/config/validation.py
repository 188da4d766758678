"""Two-phase validation of a merged config, collecting every problem before raising.

Phase 1 checks the envelope (:class:`~asklepios.config.model.ExperimentConfig`), that every
number is finite, the device strings, ``requires`` and every component ``type`` against the plugin
index, importing nothing. Phase 2 activates only the plugins the config names (bare names activate
all), resolves each ``type`` to its full id, validates the component's params with its own params
model (``extra="forbid"``), resolves and checks its local files and folders
(:mod:`asklepios.config.paths`) and writes the params back with every default filled in, so the
resolved config says everything a run used. Stages are validated as the effective config each
stage runs with; a problem a stage inherits from the base config is reported once, at the base.
Plugins listed in ``requires`` are loaded (not activated), so that their lifecycle hooks take part
in the run even when the config names none of their components.
"""

from __future__ import annotations

import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from asklepios_sdk import Params, WeightsSpec
from pydantic import BaseModel, ValidationError

from asklepios._text import did_you_mean
from asklepios.config.checks import (
    STAGE_SECTIONS,
    ConfigWarning,
    device_problem,
    effective_stage,
    non_finite_numbers,
)
from asklepios.config.loader import Origins, format_path
from asklepios.config.model import ExperimentConfig, StageConfig
from asklepios.config.paths import PATH_RULE, LocalPathRef, check_local_path, resolve_local_paths
from asklepios.errors import ConfigError, ConfigIssue, PluginLoadError, RegistryError
from asklepios.plugins import PluginHost
from asklepios.registry import ComponentEntry, format_params_errors
from asklepios.settings import check_settings_sections

__all__ = ["COMPONENT_LOCATIONS", "STAGE_SECTIONS", "component_specs", "validate_raw"]

COMPONENT_LOCATIONS: tuple[tuple[tuple[str, ...], str, bool], ...] = (
    (("data", "dataset"), "dataset", False),
    (("data", "wrappers"), "dataset", True),
    (("data", "sampler"), "sampler", False),
    (("data", "transforms", "train"), "augmentation", True),
    (("data", "transforms", "eval"), "augmentation", True),
    (("data", "batch_transforms"), "augmentation", True),
    (("model", "backbone"), "backbone", False),
    (("model", "adapters"), "adapter", True),
    (("loss",), "loss", False),
    (("evaluators",), "evaluator", True),
    (("trainer",), "trainer", False),
)
"""Where components sit in a config: (key path, kind, is a list of components)."""

DEFAULT_TRAINER = "core.supervised"

Path = tuple[str | int, ...]


def _step(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, Mapping) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return True, node[part]
    return False, None


def _get(node: Any, path: Path) -> Any:
    for part in path:
        found, node = _step(node, part)
        if not found:
            return None
    return node


def _put(node: Any, path: Path, value: Any) -> None:
    _get(node, path[:-1])[path[-1]] = value


def _has(node: Any, path: Path) -> bool:
    for part in path:
        found, node = _step(node, part)
        if not found:
            return False
    return True


def component_specs(raw: Mapping[str, Any]) -> list[tuple[Path, str, dict[str, Any]]]:
    """Return ``(key path, kind, spec mapping)`` of every component written in ``raw``."""
    found: list[tuple[Path, str, dict[str, Any]]] = []
    for path, kind, is_list in COMPONENT_LOCATIONS:
        node = _get(raw, path)
        if is_list and isinstance(node, list):
            found.extend(
                ((*path, i), kind, item) for i, item in enumerate(node) if isinstance(item, dict)
            )
        elif not is_list and isinstance(node, dict):
            found.append((path, kind, node))
    return found


def _model_fields_at(loc: Path) -> list[str]:
    """Return the field names of the envelope model that owns the last key of ``loc``."""
    model: Any = ExperimentConfig
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return []
        model = _inner_model(info.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, dict, tuple):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


@dataclass
class _Report:
    origins: Origins
    issues: list[ConfigIssue] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    settled: set[str] = field(default_factory=set)  # paths whose one problem is reported

    def add(
        self,
        path: Path,
        message: str,
        *,
        entry: ComponentEntry | None = None,
        component: str | None = None,
        plugin: str | None = None,
        suggestion: str | None = None,
    ) -> None:
        key = (format_path(path), message)
        if key in self.seen or key[0] in self.settled:
            return
        self.seen.add(key)
        self.issues.append(
            ConfigIssue(
                file=self.origins.file_of(path),
                line=self.origins.line_of(path),
                path=format_path(path),
                message=message,
                component=entry.id if entry else component,
                plugin=entry.origin if entry else plugin,
                suggestion=suggestion,
            )
        )


def _trim(raw: Any, loc: Path) -> Path:
    """Cut a pydantic location to the part that exists in ``raw`` (plus one missing key)."""
    out: list[str | int] = []
    node = raw
    for part in loc:
        if isinstance(node, Mapping):
            out.append(part)
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        else:
            break
    return tuple(out)


def _filled(model: type[Params], validated: Params) -> dict[str, Any] | None:
    """Return every param with its default filled in, or None if that would not round-trip."""
    try:
        dumped: dict[str, Any] = validated.model_dump(mode="json")
        if model.model_validate(dumped) == validated:
            return dumped
    except Exception:  # a params model that does not dump to plain data keeps what was written
        return None
    return None


def _envelope_issues(raw: Mapping[str, Any]) -> list[tuple[Path, str, str | None]]:
    try:
        ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        grouped: dict[Path, list[str]] = {}
        hints: dict[Path, str | None] = {}
        for item in err.errors(include_url=False):
            loc = tuple(item["loc"])
            path = _trim(raw, loc)
            msg = item["msg"]
            hint = None
            if item["type"] == "extra_forbidden":
                msg = "unknown key"
                candidates = _model_fields_at(loc) + (["extends"] if len(loc) == 1 else [])
                hint = did_you_mean(str(loc[-1]), candidates)
            elif item["type"] == "missing":
                msg = "required key is missing"
            elif "input" in item:
                shown = repr(item["input"])
                msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
            if msg not in grouped.setdefault(path, []):
                grouped[path].append(msg)
            hints[path] = hints.get(path) or hint
        return [(p, " or ".join(msgs), hints[p]) for p, msgs in grouped.items()]
    return []


class _Validator:
    def __init__(
        self, raw: dict[str, Any], origins: Origins, host: PluginHost, check_files: bool = True
    ) -> None:
        self.raw = raw
        self.host = host
        self.check_files = check_files
        self.report = _Report(origins)
        self.required: list[str] = []

    # -- phase 1 ---------------------------------------------------------------------------------

    def check_finite(self) -> None:
        """Refuse infinite and NaN numbers anywhere (before other checks of the same keys)."""
        for path, value in non_finite_numbers(self.raw):
            self.report.add(
                path,
                f"{value} is not a finite number (YAML reads .inf, .nan and overflowing "
                "literals such as 1e999 as infinite or NaN floats)",
                suggestion="write a finite value",
            )
            self.report.settled.add(format_path(path))

    def check_devices(self) -> None:
        """Check ``train.device`` of the base and of each stage; warn where a stage's is unused."""
        found: list[tuple[Path, Any]] = [(("train", "device"), _get(self.raw, ("train", "device")))]
        stages = self.raw.get("stages")
        for i, stage in enumerate(stages if isinstance(stages, list) else []):
            if _has(stage, ("train", "device")):
                found.append((("stages", i, "train", "device"), _get(stage, ("train", "device"))))
        base = found[0][1] if found[0][1] is not None else "auto"
        for path, value in found:
            problem = device_problem(value)
            if problem is not None:
                self.report.add(path, problem[0], suggestion=problem[1])
            elif path[0] == "stages" and value != base:
                warnings.warn(
                    f"{format_path(path)}: a run uses one device for every stage (train.device "
                    f"of the base config, or --device); this stage's '{value}' is not used",
                    ConfigWarning,
                    stacklevel=4,
                )

    def check_envelope(self) -> None:
        for path, msg, hint in _envelope_issues(self.raw):
            self.report.add(path, msg, suggestion=hint)
        stages = self.raw.get("stages")
        if isinstance(stages, list):
            names: list[str] = []
            for i, stage in enumerate(stages):
                if not isinstance(stage, Mapping):
                    continue
                name = stage.get("name")
                if name in names:
                    self.report.add(("stages", i, "name"), f"stage name '{name}' is used twice")
                init = stage.get("init_from")
                wanted = init.get("stage") if isinstance(init, Mapping) else None
                if isinstance(wanted, str) and wanted not in names:
                    self.report.add(
                        ("stages", i, "init_from", "stage"),
                        f"stage '{wanted}' is not an earlier stage",
                        suggestion=did_you_mean(wanted, names)
                        or f"earlier stages: {', '.join(names) or '(none)'}",
                    )
                if isinstance(name, str):
                    names.append(name)

    def load_required(self) -> None:
        """Load the plugins ``requires`` names, so their lifecycle hooks take part in the run."""
        for plugin_id in self.required:
            info = self.host.load(plugin_id)
            if not info.loaded:
                self.report.add(
                    ("requires", plugin_id),
                    f"the config requires {info.problem()}",
                    plugin=f"{info.id} {info.version}",
                    suggestion=info.fix,
                )

    def check_requires(self) -> None:
        requires = self.raw.get("requires")
        if not isinstance(requires, Mapping):
            return
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        for plugin_id, spec in requires.items():
            path: Path = ("requires", str(plugin_id))
            if plugin_id not in self.host.index:
                self.report.add(
                    path,
                    f"plugin '{plugin_id}' is not installed",
                    suggestion=did_you_mean(str(plugin_id), self.host.index)
                    or "pip install the distribution that provides it",
                )
                continue
            info = self.host.index[plugin_id]
            try:
                ok = SpecifierSet(str(spec or "")).contains(info.version, prereleases=True)
            except InvalidSpecifier:
                self.report.add(path, f"'{spec}' is not a version specifier (e.g. '>=0.1,<0.2')")
                continue
            if not ok:
                self.report.add(
                    path,
                    f"the config requires {plugin_id}{spec}; {info.label} is installed",
                    suggestion=f"pip install '{info.distribution}{spec}'",
                )
            elif info.is_usable:
                self.required.append(str(plugin_id))
            else:
                self.report.add(
                    path,
                    f"the config requires {info.problem()}",
                    plugin=f"{info.id} {info.version}",
                    suggestion=info.fix,
                )

    def check_index(self, path: Path, kind: str, spec: Mapping[str, Any]) -> bool:
        """Check ``spec['type']`` against the index; return whether phase 2 should look it up."""
        type_id = spec.get("type")
        if not isinstance(type_id, str) or not type_id:
            return False
        plugin_id, dot, _ = type_id.partition(".")
        if not dot:
            return True
        info = self.host.index.get(plugin_id)
        if info is None or info.is_usable:
            return True
        self.report.add(
            (*path, "type"),
            f"{kind} '{type_id}' comes from {info.problem()}",
            component=type_id,
            plugin=f"{info.id} {info.version}",
            suggestion=info.fix,
        )
        return False

    # -- phase 2 ---------------------------------------------------------------------------------

    def check_component(
        self, path: Path, kind: str, spec: dict[str, Any], local: Path, only: dict | None
    ) -> None:
        """Resolve and check one component; in a stage, report only keys the stage writes."""
        type_id = spec["type"]
        try:
            entry = self.host.registry.get(kind, type_id)
        except (PluginLoadError, RegistryError) as err:
            if self.host.strict and isinstance(err, PluginLoadError):
                raise
            if only is not None and not _has(only, (*local, "type")):
                return  # the base config's own check reports it
            info = self.host.index.get(type_id.partition(".")[0]) if "." in type_id else None
            self.report.add(
                (*path, "type"),
                str(err),
                component=type_id,
                plugin=f"{info.id} {info.version}" if info else None,
            )
            return
        if entry.id != type_id:
            spec["type"] = entry.id
        self.check_paths(path, spec, local, only, entry)
        params = {k: v for k, v in spec.items() if k not in ("type", "weights")}
        try:
            validated = entry.params_model.model_validate(params)
        except ValidationError as err:
            fields = entry.params_field_names()
            for loc, msg in format_params_errors(err):
                inherited = only is not None and not _has(only, (*local, *loc[:1]))
                if inherited and msg != "Field required":
                    continue  # the base config's own check reports it
                hint = None
                if msg == "unknown parameter" and loc:
                    hint = did_you_mean(str(loc[0]), fields) or (
                        f"{entry.id} takes: {', '.join(fields) or 'no parameters'}"
                    )
                self.report.add(
                    (*path, *loc),
                    msg,
                    entry=entry,
                    suggestion=hint or f"see `asklepios plugins show {entry.plugin_id}`",
                )
        except Exception as err:  # a params validator that raised instead of reporting
            self.report.add(
                path,
                f"{entry.params_model.__name__} raised {type(err).__name__}: {err}",
                entry=entry,
                suggestion=f"a bug in plugin {entry.origin}: validators should raise ValueError",
            )
        else:
            self.fill_defaults(spec, local, only, entry, validated)

    def check_paths(
        self,
        path: Path,
        spec: dict[str, Any],
        local: Path,
        only: dict | None,
        entry: ComponentEntry,
    ) -> None:
        """Resolve the component's local paths (params and weights) and check they are there."""

        def origin_of(sub: Path) -> str:
            return self.report.origins.file_of((*path, *sub))

        refs = resolve_local_paths(entry.params_model, spec, origin_of)
        weights = spec.get("weights")
        if isinstance(weights, dict):
            refs += [
                LocalPathRef(("weights", *r.where), r.kind, r.given, r.resolved, r.base)
                for r in resolve_local_paths(
                    WeightsSpec, weights, lambda sub: origin_of(("weights", *sub))
                )
            ]
        for ref in refs:
            written = only is None or _has(only, (*local, *ref.where))
            if only is not None and written:
                _put(only, (*local, *ref.where), ref.resolved)
            problem = check_local_path(ref) if self.check_files else None
            if problem is not None and written:
                self.report.add((*path, *ref.where), problem, entry=entry, suggestion=PATH_RULE)

    def fill_defaults(
        self,
        spec: dict[str, Any],
        local: Path,
        only: dict | None,
        entry: ComponentEntry,
        validated: Params,
    ) -> None:
        """Write the params back with every default filled in (``type`` first, weights last)."""
        params = _filled(entry.params_model, validated)
        if params is None:
            return
        # a default path is relative to the working directory, as the component would read it
        resolve_local_paths(entry.params_model, params, lambda sub: "<default>")
        complete = {"type": spec["type"], **params}
        if "weights" in spec:
            complete["weights"] = spec["weights"]
        spec.clear()
        spec.update(complete)
        if only is not None and _has(only, (*local, "type")):
            target = _get(only, local)
            target.clear()
            target.update(complete)

    def check_components(self, doc: dict[str, Any], prefix: Path, only: dict | None) -> None:
        """Check every component of ``doc``; for a stage, only those the stage overrides."""
        if "trainer" not in doc and only is None:
            doc["trainer"] = {"type": DEFAULT_TRAINER}
        specs = component_specs(doc)
        pending = []
        for path, kind, spec in specs:
            if only is not None and not _has(only, path):
                continue
            if self.check_index((*prefix, *path), kind, spec):
                pending.append((path, kind, spec))
        for path, kind, spec in pending:
            self.check_component((*prefix, *path), kind, spec, path, only)
            if only is not None and _has(only, (*path, "type")):
                target = _get(only, path)
                if isinstance(target, dict):
                    target["type"] = spec["type"]

    def check_stages(self) -> None:
        stages = self.raw.get("stages")
        if not isinstance(stages, list) or not stages:
            return
        base = {k: v for k, v in self.raw.items() if k != "stages"}
        in_base = {(path, msg) for path, msg, _ in _envelope_issues(base)}
        for i, stage in enumerate(stages):
            if not isinstance(stage, dict):
                continue
            overrides = {k: stage[k] for k in STAGE_SECTIONS if stage.get(k) is not None}
            effective = effective_stage(base, overrides)
            prefix: Path = ("stages", i)
            for path, msg, hint in _envelope_issues(effective):
                inherited = (path, msg) in in_base and not _has(overrides, path)
                if _has(overrides, path[:1]) and not inherited:
                    self.report.add((*prefix, *path), msg, suggestion=hint)
            self.check_components(effective, prefix, overrides)


def validate_raw(
    raw: dict[str, Any],
    origins: Origins,
    host: PluginHost,
    source: str | None = None,
    *,
    check_files: bool = True,
) -> ExperimentConfig:
    """Validate a merged config in both phases; full ids are written back into ``raw``.

    ``check_files=False`` resolves local paths without checking that they exist (a finished
    run's config, opened after its data moved).

    Raises:
        ConfigError: listing every problem found, each with file, key path, component and plugin.
        PluginLoadError: in strict mode, when a plugin the config names fails to load.
    """
    validator = _Validator(raw, origins, host, check_files)
    validator.check_finite()
    validator.check_envelope()
    validator.check_devices()
    validator.check_requires()
    validator.check_components(raw, (), None)
    validator.check_stages()
    for problem in check_settings_sections(raw, host):  # tracking.<plugin-id> entries
        validator.report.add(
            problem.path, problem.message, plugin=problem.plugin, suggestion=problem.suggestion
        )
    validator.load_required()
    if validator.report.issues:
        raise ConfigError(validator.report.issues, source)
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:  # only reachable if a write-back broke the envelope
        raise ConfigError(
            [ConfigIssue(source or origins.root, "", f"invalid after resolving ids: {err}")],
            source,
        ) from err


def stage_overrides(stage: StageConfig) -> dict[str, Any]:
    """Return the sections ``stage`` overrides, as plain data."""
    return {k: getattr(stage, k) for k in STAGE_SECTIONS if getattr(stage, k) is not None}
