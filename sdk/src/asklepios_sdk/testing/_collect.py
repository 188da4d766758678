"""Enumerate what a plugin registers by calling its registration hooks with a collecting callback.

The SDK does not depend on the core host: the hook specifications are taken from
``asklepios.hookspecs`` when the core is installed (then pluggy validates every implementation and
``check_pending`` rejects misspelled hooks), and the SDK's hook tables are checked otherwise. Each
``register`` call is checked by :func:`~asklepios_sdk.registration.check_registration`, the same
function the host raises from; the kit keeps every problem instead of the first.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from asklepios_sdk._markers import PROJECT_NAME
from asklepios_sdk.registration import (
    COMMANDS_HOOK,
    LIFECYCLE_HOOKS,
    REGISTRATION_HOOKS,
    SETTINGS_HOOK,
    ComponentFactory,
    Registration,
    Target,
    check_command,
    check_registration,
    make_registration,
)

__all__ = ["Collected", "Entry", "collect", "resolve_plugin_id"]


@dataclass(frozen=True)
class Entry:
    """One ``register(...)`` call as the kit saw it, with every problem found in it."""

    registration: Registration
    problems: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.registration.kind

    @property
    def name(self) -> str:
        return self.registration.name

    @property
    def component_id(self) -> str:
        return self.registration.component_id

    @property
    def doc(self) -> str | None:
        """Return the one-line doc (explicit, or read from the target's source)."""
        return self.registration.read_doc()

    def factory(self) -> ComponentFactory:
        """Import and return the implementation."""
        return self.registration.resolve()


@dataclass
class Collected:
    """Everything the hook module registered, and what went wrong at plugin level."""

    plugin_id: str
    entries: list[Entry] = field(default_factory=list)
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


def _collector(kind: str, collected: Collected) -> Any:
    def register(name: str, target: Target, params: Any = None, doc: str | None = None) -> None:
        reg = make_registration(collected.plugin_id, kind, name, target, params, doc)
        problems = check_registration(reg)
        for other in collected.entries:
            if other.kind == kind and other.name == name:
                problems.append(
                    f"registered twice: first with {other.registration.target_path}, again with "
                    f"{reg.target_path}"
                )
                break
        collected.entries.append(Entry(reg, tuple(problems)))

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
    known = {*REGISTRATION_HOOKS.values(), *LIFECYCLE_HOOKS, SETTINGS_HOOK, COMMANDS_HOOK}
    names = [n for n in dir(plugin) if hasattr(getattr(plugin, n, None), marker)]
    return sorted(n for n in names if n not in known)


def collect(hooks: str | object, plugin_id: str | None = None) -> Collected:
    """Import ``hooks`` (a dotted module name or a hook object) and collect its registrations.

    Problems with the module itself (import error, a hook that pluggy rejects, a misspelled hook,
    a hook that raises) are recorded in :attr:`Collected.problems`; problems of a single
    ``register`` call stay with its :class:`Entry`.
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
    for kind, hook_name in REGISTRATION_HOOKS.items():
        caller = getattr(pm.hook, hook_name, None)
        if caller is None:
            continue
        try:
            caller(register=_collector(kind, collected))
        except Exception as err:
            collected.problems.append(f"{hook_name} raised {type(err).__name__}: {err}")
    _check_commands(pm, collected)
    return collected


def _check_commands(pm: pluggy.PluginManager, collected: Collected) -> None:
    """Record the problems of the plugin's ``register_commands`` calls (plugin level)."""
    caller = getattr(pm.hook, COMMANDS_HOOK, None)
    if caller is None:
        return
    names: set[str] = set()

    def register(name: str, target: str, doc: str | None = None) -> None:
        collected.problems.extend(check_command(collected.plugin_id, name, target, doc))
        if name in names:
            collected.problems.append(f"command {name!r} registered twice")
        names.add(name)

    try:
        caller(register=register)
    except Exception as err:
        collected.problems.append(f"{COMMANDS_HOOK} raised {type(err).__name__}: {err}")
