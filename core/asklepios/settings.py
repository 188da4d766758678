"""Settings sections of configs (``tracking:``) and the plugins that declare an entry in them.

A cross-cutting plugin (a tracker) takes part in every run without being named; its settings sit
under ``<section>.<plugin-id>`` and are checked with the params model it registers through the
``register_settings`` hook (:data:`asklepios_sdk.registration.SETTINGS_HOOK`). Validation calls
:func:`check_settings_sections`: it loads only the plugins the sections name (their hook modules,
no components), checks each entry with its model and writes the entry back with every default
filled in, so the resolved config says what the tracker ran with. A disabled plugin's entry is
left as written: the user switched the plugin off for this run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asklepios_sdk.registration import SETTINGS_HOOK, SETTINGS_SECTIONS, check_settings
from pydantic import ValidationError

from asklepios._text import did_you_mean
from asklepios.errors import PluginError
from asklepios.plugins.discovery import PluginStatus
from asklepios.registry import format_params_errors

if TYPE_CHECKING:
    from asklepios_sdk import Params

    from asklepios.plugins import PluginHost

__all__ = ["SettingsProblem", "check_settings_sections", "declared_settings", "settings_plugins"]


@dataclass(frozen=True)
class SettingsProblem:
    """One problem of a settings entry: where, what, which plugin, and the fix."""

    path: tuple[str | int, ...]
    message: str
    plugin: str | None = None
    suggestion: str | None = None


def declared_settings(host: PluginHost, plugin_id: str) -> dict[str, type[Params]]:
    """Load ``plugin_id`` and return the settings models it registers, by section.

    Raises:
        PluginError: the plugin did not load, or its ``register_settings`` call is invalid.
    """
    info = host.load(plugin_id)
    if not info.loaded:
        raise PluginError(info.problem())
    found: dict[str, type[Params]] = {}
    problems: list[str] = []

    def register(section: str, params: type[Params]) -> None:
        problems.extend(check_settings(plugin_id, section, params))
        if section in found:
            problems.append(f"plugin '{plugin_id}' registers settings for {section!r} twice")
        found[section] = params

    host.only(SETTINGS_HOOK, plugin_id)(register=register)
    if problems:
        raise PluginError(f"{problems[0]} ({info.label}). Fix the plugin's register_settings hook")
    return found


def settings_plugins(host: PluginHost, section: str) -> list[str]:
    """Return the ids of the enabled plugins that declare an entry in ``section`` (loads them)."""
    ids = []
    for info in host.plugins():
        if not info.is_usable:
            continue
        try:
            if section in declared_settings(host, info.id):
                ids.append(info.id)
        except PluginError:
            continue
    return ids


def _filled(model: type[Params], entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the validated entry with defaults, or None if dumping it would not round-trip."""
    validated = model.model_validate(dict(entry))
    dumped: dict[str, Any] = validated.model_dump(mode="json")
    return dumped if model.model_validate(dumped) == validated else None


def _check_entry(
    host: PluginHost, section: str, plugin_id: str, entry: Any
) -> tuple[list[SettingsProblem], dict[str, Any] | None]:
    """Check one ``<section>.<plugin_id>`` entry; return its problems and the filled entry."""
    path: tuple[str | int, ...] = (section, plugin_id)
    info = host.index.get(plugin_id)
    if info is None:
        hint = did_you_mean(plugin_id, host.index)
        return [
            SettingsProblem(
                path,
                f"no plugin '{plugin_id}' is installed to take these {section} settings",
                suggestion=hint or f"pip install asklepios-{plugin_id}, or remove the entry",
            )
        ], None
    label = f"{info.id} {info.version}"
    if info.status == PluginStatus.DISABLED:
        return [], None
    if not info.is_usable:
        return [SettingsProblem(path, info.problem(), label, info.fix)], None
    try:
        models = declared_settings(host, plugin_id)
    except PluginError as err:
        if host.strict:
            raise
        return [SettingsProblem(path, str(err), label)], None
    model = models.get(section)
    if model is None:
        others = settings_plugins(host, section)
        return [
            SettingsProblem(
                path,
                f"plugin '{plugin_id}' ({info.label}) declares no {section} settings",
                label,
                f"plugins with {section} settings: {', '.join(others) or '(none installed)'}",
            )
        ], None
    if entry is not None and not isinstance(entry, Mapping):
        problem = SettingsProblem(path, f"expected a mapping of settings (got {entry!r})", label)
        return [problem], None
    try:
        return [], _filled(model, entry or {})
    except ValidationError as err:
        fields = list(model.model_fields)
        problems = []
        for loc, msg in format_params_errors(err):
            hint = None
            if msg == "unknown parameter" and loc:
                hint = did_you_mean(str(loc[0]), fields) or f"{section}.{plugin_id} takes: " + (
                    ", ".join(fields) or "nothing"
                )
            problems.append(SettingsProblem((*path, *loc), msg, label, hint))
        return problems, None


def check_settings_sections(raw: dict[str, Any], host: PluginHost) -> list[SettingsProblem]:
    """Check every settings section of ``raw``; fill each valid entry's defaults in place.

    A section that is not a mapping is left to the envelope check, which reports it.
    """
    problems: list[SettingsProblem] = []
    for section in SETTINGS_SECTIONS:
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        for plugin_id in list(entries):
            found, filled = _check_entry(host, section, str(plugin_id), entries[plugin_id])
            problems += found
            if filled is not None:
                entries[plugin_id] = filled
    return problems
