"""Plugins: finding them (:mod:`~asklepios.plugins.discovery`) and loading them (:mod:`.loading`).

Finding plugins and importing them are separate steps. The *index* lists every plugin of the
entry-point group ``asklepios.plugins`` from distribution metadata, importing nothing; a plugin is
imported only when a config names one of its components, a listing of components is asked for, or
a run gathers the lifecycle hooks. The core's own components are plugin ``core``, hook module
``asklepios.builtins.hooks``, loaded through exactly the same path.

Public API (stable):

* :class:`PluginInfo` -- one index record; :meth:`PluginInfo.to_dict` for ``--json``.
* :class:`PluginHost` -- ``index`` / ``plugins()`` / ``info(id)`` / ``problems()``; ``load(id)``
  (import + pluggy registration, so its lifecycle hooks take part), ``activate(id)`` (load +
  registration hooks, so its components are in ``registry``), ``activate_all()``,
  ``load_all()``, ``require(id)``; ``registry``; ``hook`` (the pluggy relay); ``caller(name)``
  (pluggy's caller, or ``None`` when nobody implements it); ``call_each(name, ...)`` (results per
  plugin); ``add_plugin(obj, id)`` for in-memory plugins (tests, notebooks).
* :func:`get_host` / :func:`set_host` / :func:`reset_host` -- the process-wide host the CLI, the
  config loader and the engine share; :func:`get_component` / :func:`list_components` on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from asklepios.plugins.discovery import (
    BUILTINS_MODULE,
    CORE_PLUGIN_ID,
    DISABLE_ENV,
    GROUP,
    STRICT_ENV,
    TRACE_ENV,
    PluginInfo,
    PluginStatus,
    disabled_from_env,
    is_strict,
)
from asklepios.plugins.loading import PluginHost

if TYPE_CHECKING:
    from asklepios.registry import ComponentEntry

__all__ = [
    "BUILTINS_MODULE",
    "CORE_PLUGIN_ID",
    "DISABLE_ENV",
    "GROUP",
    "STRICT_ENV",
    "TRACE_ENV",
    "PluginHost",
    "PluginInfo",
    "PluginStatus",
    "disabled_from_env",
    "get_component",
    "get_host",
    "is_strict",
    "list_components",
    "reset_host",
    "set_host",
]

_HOST: PluginHost | None = None


def get_host(strict: bool | None = None, disabled: Iterable[str] | None = None) -> PluginHost:
    """Return the process-wide host, creating it on first use.

    Args:
        strict: when given and different from the current host's, a new host replaces it.
        disabled: when given and different from the current host's, a new host replaces it.
    """
    global _HOST
    wanted_disabled = None if disabled is None else frozenset(disabled) | disabled_from_env()
    if (
        _HOST is None
        or (strict is not None and _HOST.strict != strict)
        or (wanted_disabled is not None and _HOST.disabled != wanted_disabled)
    ):
        _HOST = PluginHost(strict=strict, disabled=disabled)
    return _HOST


def set_host(host: PluginHost | None) -> None:
    """Install ``host`` as the process-wide host (``None`` forgets it)."""
    global _HOST
    _HOST = host


def reset_host() -> None:
    """Forget the process-wide host; the next :func:`get_host` re-reads what is installed."""
    set_host(None)


def get_component(kind: str, component_id: str) -> ComponentEntry:
    """Return the entry of ``component_id`` from the process-wide host's registry."""
    return get_host().registry.get(kind, component_id)


def list_components(kind: str | None = None, pattern: str | None = None) -> list[ComponentEntry]:
    """Return every installed component of ``kind`` matching ``pattern`` (activates plugins)."""
    return get_host().registry.list(kind, pattern)
