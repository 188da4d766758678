"""The composed JSON Schema of configs: the envelope plus every installed component's params.

Each component location (``loss``, ``model.backbone``, ``evaluators[]``, ...) accepts one of the
installed components of its kind, told apart by ``type`` (its full id, or its bare name when that
is unique), so editors with a YAML language server complete and check whole configs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from asklepios.config.model import ExperimentConfig

if TYPE_CHECKING:
    from asklepios.plugins import PluginHost
    from asklepios.registry import ComponentEntry

__all__ = ["config_schema"]

# (definition holding the field, field name, kind, list of components)
_FIELDS: tuple[tuple[str | None, str, str, bool], ...] = (
    ("DataConfig", "dataset", "dataset", False),
    ("DataConfig", "wrappers", "dataset", True),
    ("DataConfig", "sampler", "sampler", False),
    ("TransformsConfig", "train", "augmentation", True),
    ("TransformsConfig", "eval", "augmentation", True),
    ("DataConfig", "batch_transforms", "augmentation", True),
    ("ModelConfig", "backbone", "backbone", False),
    ("ModelConfig", "adapters", "adapter", True),
    (None, "loss", "loss", False),
    (None, "evaluators", "evaluator", True),
    (None, "trainer", "trainer", False),
)


def _def_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _component_schema(
    entry: ComponentEntry, bare_unique: bool, defs: dict[str, Any]
) -> dict[str, Any]:
    prefix = _def_name(entry.id) + "."
    schema = entry.params_model.model_json_schema(ref_template="#/$defs/" + prefix + "{model}")
    for name, sub in schema.pop("$defs", {}).items():
        defs[prefix + name] = sub
    properties = dict(schema.get("properties", {}))
    names = [entry.id, entry.name] if bare_unique else [entry.id]
    properties["type"] = {"enum": names, "description": entry.doc or entry.id}
    properties["weights"] = {
        "anyOf": [{"$ref": "#/$defs/WeightsSpec"}, {"type": "null"}],
        "description": "Weights applied after construction.",
    }
    return {
        "title": entry.id,
        "description": entry.doc,
        "type": "object",
        "properties": properties,
        "required": ["type", *schema.get("required", [])],
        "additionalProperties": False,
    }


def config_schema(host: PluginHost | None = None) -> dict[str, Any]:
    """Return the JSON Schema of a config with every installed component (activates plugins)."""
    from asklepios.plugins import get_host

    host = host or get_host()
    entries = host.registry.list()
    schema = ExperimentConfig.model_json_schema()
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    if "WeightsSpec" not in defs:
        from asklepios_sdk import WeightsSpec

        defs["WeightsSpec"] = WeightsSpec.model_json_schema()
    by_kind: dict[str, list[ComponentEntry]] = {}
    for entry in entries:
        by_kind.setdefault(entry.kind, []).append(entry)
    for kind, kind_entries in by_kind.items():
        counts: dict[str, int] = {}
        for entry in kind_entries:
            counts[entry.name] = counts.get(entry.name, 0) + 1
        defs[f"component.{kind}"] = {
            "title": f"{kind} component",
            "oneOf": [_component_schema(e, counts[e.name] == 1, defs) for e in kind_entries],
        }
    for owner, field, kind, is_list in _FIELDS:
        target = schema if owner is None else defs.get(owner)
        if target is None or field not in target.get("properties", {}):
            continue
        ref: dict[str, Any]
        if kind in by_kind:
            ref = {"$ref": f"#/$defs/component.{kind}"}
        else:
            ref = {"$ref": "#/$defs/ComponentSpec"}
        old = target["properties"][field]
        new: dict[str, Any] = {"type": "array", "items": ref} if is_list else dict(ref)
        if "description" in old:
            new["description"] = old["description"]
        if not is_list and any(s.get("type") == "null" for s in old.get("anyOf", [])):
            new = {"anyOf": [new, {"type": "null"}]}
        if "default" in old:
            new["default"] = old["default"]
        target["properties"][field] = new
    _add_settings_sections(schema, defs, host)
    schema["properties"]["extends"] = {
        "description": "Config file(s) to inherit from, merged key-wise, relative to this file.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "asklepios experiment config"
    return schema


def _add_settings_sections(schema: dict[str, Any], defs: dict[str, Any], host: PluginHost) -> None:
    """Describe ``tracking.<plugin-id>`` (and other settings sections) by each plugin's model."""
    from asklepios_sdk.registration import SETTINGS_SECTIONS

    from asklepios.settings import declared_settings, settings_plugins

    for section in SETTINGS_SECTIONS:
        if section not in schema.get("properties", {}):
            continue
        entries: dict[str, Any] = {}
        for plugin_id in settings_plugins(host, section):
            model = declared_settings(host, plugin_id)[section]
            name = f"settings.{section}.{plugin_id}"
            defs[name] = model.model_json_schema(ref_template="#/$defs/" + name + ".{model}")
            nested = defs[name].pop("$defs", {})
            defs.update({f"{name}.{key}": value for key, value in nested.items()})
            entries[plugin_id] = {"$ref": f"#/$defs/{name}"}
        old = schema["properties"][section]
        schema["properties"][section] = {
            "type": "object",
            "description": old.get("description", f"Settings of the installed {section} plugins."),
            "properties": entries,
            "additionalProperties": False,
        }
