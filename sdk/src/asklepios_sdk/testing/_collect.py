"""Enumerate what a plugin registers by calling its registration hooks with a collecting callback.

The SDK does not depend on the core host: the hook specifications are taken from
``asklepios.hookspecs`` when the core is installed (then pluggy validates every implementation and
``check_pending`` rejects misspelled hooks), and the names below are checked otherwise.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from asklepios_sdk._markers import PROJECT_NAME
from asklepios_sdk.params import Params
from asklepios_sdk.registration import REGISTRATION_HOOKS

__all__ = ["Collected", "Registration", "collect", "resolve_plugin_id"]


_LIFECYCLE_HOOKS = frozenset(
    {
        "run_start",
        "stage_start",
        "epoch_start",
        "step_end",
        "epoch_end",
        "evaluation_end",
        "stage_end",
        "run_end",
        "record_metadata",
    }
)
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Registration:
    """One ``register(...)`` call as the kit saw it."""

    kind: str
    name: str
    component_id: str
    factory: Callable[..., Any]
    params: type[Params] | None
    doc: str | None
    problems: tuple[str, ...] = ()


@dataclass
class Collected:
    """Everything the hook module registered, and what went wrong at plugin level."""

    plugin_id: str
    registrations: list[Registration] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def resolve_plugin_id(hooks: object, plugin_id: str | None) -> str:
    """Return the plugin id: given, else from the entry point, else from the module name."""
    if plugin_id:
        return plugin_id
    module_name = hooks if isinstance(hooks, str) else getattr(hooks, "__name__", None)
    if isinstance(module_name, str):
        for ep in entry_points(group="asklepios.plugins"):
            if ep.value == module_name:
                return ep.name
        head = module_name.split(".", 1)[0]
        if head.startswith("asklepios_"):
            return head[len("asklepios_") :]
    return "plugin"


def _first_doc_line(factory: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(factory)
    if not doc:
        return None
    return doc.strip().splitlines()[0].strip() or None


def _collector(kind: str, collected: Collected, seen: dict[str, Callable[..., Any]]) -> Any:
    def register(
        name: str,
        factory: Callable[..., Any],
        params: type[Params] | None = None,
        doc: str | None = None,
    ) -> None:
        problems: list[str] = []
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(
                f"name {name!r} must be bare lowercase snake_case (no dot): the host prefixes "
                f"'{collected.plugin_id}.'"
            )
        if not callable(factory):
            problems.append(f"factory {factory!r} is not callable")
        if params is not None and not (isinstance(params, type) and issubclass(params, Params)):
            problems.append(
                f"params {params!r} is not a subclass of asklepios_sdk.Params; derive the params "
                "model from Params (extra='forbid')"
            )
        line = doc if doc is not None else (_first_doc_line(factory) if callable(factory) else None)
        if not line:
            problems.append(
                "no one-line doc: give the factory a docstring or pass register(..., doc='...')"
            )
        component_id = f"{collected.plugin_id}.{name}"
        key = f"{kind}:{component_id}"
        if key in seen:
            problems.append(f"registered twice: first by {seen[key]!r}, again by {factory!r}")
        else:
            seen[key] = factory
        collected.registrations.append(
            Registration(kind, str(name), component_id, factory, params, line, tuple(problems))
        )

    return register


def _load_specs(pm: pluggy.PluginManager) -> bool:
    try:
        hookspecs = importlib.import_module("asklepios.hookspecs")
    except ImportError:
        return False
    pm.add_hookspecs(hookspecs)
    return True


def _unknown_hooks(plugin: object) -> list[str]:
    marker = f"{PROJECT_NAME}_impl"
    known = set(REGISTRATION_HOOKS.values()) | _LIFECYCLE_HOOKS
    names = [n for n in dir(plugin) if hasattr(getattr(plugin, n, None), marker)]
    return sorted(n for n in names if n not in known)


def collect(hooks: str | object, plugin_id: str | None = None) -> Collected:
    """Import ``hooks`` (a dotted module name or a hook object) and collect its registrations.

    Problems with the module itself (import error, a hook that pluggy rejects, a misspelled hook,
    a hook that raises) are recorded in :attr:`Collected.problems`; problems of a single
    ``register`` call stay with that registration.
    """
    collected = Collected(plugin_id=resolve_plugin_id(hooks, plugin_id))
    try:
        plugin = importlib.import_module(hooks) if isinstance(hooks, str) else hooks
    except Exception as err:  # the plugin's own import error is what the report is about
        collected.problems.append(f"importing {hooks!r} failed: {type(err).__name__}: {err}")
        return collected
    pm = pluggy.PluginManager(PROJECT_NAME)
    has_specs = _load_specs(pm)
    try:
        pm.register(plugin, name=collected.plugin_id)
        if has_specs:
            pm.check_pending()
    except pluggy.PluginValidationError as err:
        collected.problems.append(f"pluggy rejected the hook module: {err}")
        return collected
    if not has_specs:
        for name in _unknown_hooks(plugin):
            known = sorted(REGISTRATION_HOOKS.values())
            collected.problems.append(f"hook {name!r} is not an asklepios hook; known: {known}")
    seen: dict[str, Callable[..., Any]] = {}
    for kind, hook_name in REGISTRATION_HOOKS.items():
        caller = getattr(pm.hook, hook_name, None)
        if caller is None:
            continue
        try:
            caller(register=_collector(kind, collected, seen))
        except Exception as err:
            collected.problems.append(f"{hook_name} raised {type(err).__name__}: {err}")
    return collected
