"""Loading plugins one by one, each in isolation, and the pluggy hook relay.

A plugin is imported (through stevedore) only when it is *loaded*: when a config names one of its
components, a listing of components is asked for, or a run gathers the lifecycle hooks. Every load
is isolated: an import error, a hook pluggy rejects (a misspelled hook fails ``check_pending()``)
or a registration hook that raises is recorded on the plugin's
:class:`~asklepios.plugins.discovery.PluginInfo` and the plugin is skipped; only a config that
names it fails, with that cause. In strict mode (``--strict`` or ``ASKLEPIOS_STRICT_PLUGINS=1``)
the failure is raised at once.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from asklepios_sdk import PROJECT_NAME
from asklepios_sdk.registration import LIFECYCLE_HOOKS, REGISTRATION_HOOKS

from asklepios._text import did_you_mean, short_list
from asklepios.errors import (
    DuplicatePluginError,
    IncompatiblePluginError,
    PluginDisabledError,
    PluginError,
    PluginLoadError,
    UnknownPluginError,
)
from asklepios.plugins.discovery import (
    CORE_PLUGIN_ID,
    DISABLE_ENV,
    GROUP,
    TRACE_ENV,
    PluginInfo,
    PluginStatus,
    build_index,
    disabled_from_env,
    installed_version,
    is_strict,
)

if TYPE_CHECKING:
    import pluggy

    from asklepios.registry import Registry

__all__ = ["PluginHost"]


class PluginHost:
    """Discover, load and activate plugins one by one; own the registry and the hook relay.

    Args:
        strict: re-raise plugin failures at once (default: ``ASKLEPIOS_STRICT_PLUGINS``).
        disabled: plugin ids never to load (added to ``ASKLEPIOS_DISABLE_PLUGINS``).
        discover: read the ``asklepios.plugins`` entry-point group (off for in-memory tests).
        builtins: include plugin ``core`` (hook module ``asklepios.builtins.hooks``).
        search_path: directories to discover distributions in (default: ``sys.path``).
    """

    def __init__(
        self,
        strict: bool | None = None,
        disabled: Iterable[str] | None = None,
        *,
        discover: bool = True,
        builtins: bool = True,
        search_path: Iterable[str] | None = None,
    ) -> None:
        self.strict = is_strict(strict)
        self.disabled = frozenset(disabled or ()) | disabled_from_env()
        self._discover = discover
        self._builtins = builtins
        self._search_path = None if search_path is None else [str(p) for p in search_path]
        self._index: dict[str, PluginInfo] | None = None
        self._extra: dict[str, PluginInfo] = {}
        self._pm: pluggy.PluginManager | None = None
        self._registry: Registry | None = None
        self._stevedore_fresh = False

    # -- index ---------------------------------------------------------------------------------

    @property
    def index(self) -> dict[str, PluginInfo]:
        """Return plugin id -> :class:`PluginInfo`, built on first use without importing plugins."""
        if self._index is None:
            self._index = build_index(
                builtins=self._builtins,
                discover=self._discover,
                search_path=self._search_path,
                extra=self._extra.values(),
                disabled=self.disabled,
                strict=self.strict,
            )
        return self._index

    def plugins(self, *, include_builtin: bool = True) -> list[PluginInfo]:
        """Return the index records sorted by id (``core`` first when included)."""
        infos = sorted(self.index.values(), key=lambda i: (not i.builtin, i.id))
        return [i for i in infos if include_builtin or not i.builtin]

    def info(self, plugin_id: str) -> PluginInfo:
        """Return the record of ``plugin_id``; raise :class:`UnknownPluginError` if unknown."""
        try:
            return self.index[plugin_id]
        except KeyError:
            hint = did_you_mean(plugin_id, self.index)
            raise UnknownPluginError(
                f"no plugin '{plugin_id}' is installed."
                + (f" {hint}" if hint else "")
                + f" Installed plugins: {short_list(self.index)}. Fix: pip install the "
                "distribution that provides it, then check `asklepios plugins list`"
            ) from None

    def failures(self) -> list[PluginInfo]:
        """Return the plugins that failed, are incompatible, duplicated or disabled."""
        return [i for i in self.plugins() if not i.is_usable]

    def problems(self) -> list[str]:
        """Return one line per plugin that failed, is incompatible or duplicated (not disabled)."""
        return [i.problem() for i in self.failures() if i.status != PluginStatus.DISABLED]

    def add_plugin(
        self,
        obj: Any,
        plugin_id: str,
        *,
        version: str = "0+local",
        distribution: str | None = None,
        location: str | None = None,
    ) -> PluginInfo:
        """Add an in-memory plugin (a module or object with ``@hookimpl`` functions) to the index.

        Used by tests and notebooks instead of installing a distribution; the plugin is loaded
        lazily like any other. Raises :class:`DuplicatePluginError` if the id is taken.
        """
        from asklepios_sdk.registration import PLUGIN_ID_PATTERN

        if not PLUGIN_ID_PATTERN.match(plugin_id):
            raise PluginLoadError(
                f"invalid plugin id '{plugin_id}': use lowercase letters, digits and '_'"
            )
        if plugin_id in self.index:
            other = self.index[plugin_id]
            raise DuplicatePluginError(
                f"plugin id '{plugin_id}' is already provided by {other.label}; pick another id"
            )
        info = PluginInfo(
            id=plugin_id,
            distribution=distribution or f"<in-memory {plugin_id}>",
            version=version,
            location=location,
            module=getattr(obj, "__name__", type(obj).__name__),
            obj=obj,
            builtin=plugin_id == CORE_PLUGIN_ID,
        )
        if plugin_id in self.disabled:
            info.mark(
                PluginStatus.DISABLED,
                "disabled by --disable or " + DISABLE_ENV,
                f"remove '{plugin_id}' from --disable / {DISABLE_ENV}",
            )
        self._extra[plugin_id] = info
        self.index[plugin_id] = info
        return info

    # -- pluggy ----------------------------------------------------------------------------------

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """Return the pluggy manager holding the hookspecs and every loaded plugin."""
        if self._pm is None:
            import pluggy

            from asklepios import hookspecs

            pm = pluggy.PluginManager(PROJECT_NAME)
            pm.add_hookspecs(hookspecs)
            if os.environ.get(TRACE_ENV, "").strip() not in ("", "0"):
                # every hook call and its result on stderr, like datasette's hook tracing
                pm.trace.root.setwriter(sys.stderr.write)
                pm.enable_tracing()
            self._pm = pm
        return self._pm

    @property
    def hook(self) -> Any:
        """Return the pluggy hook relay: ``host.hook.run_start(run=run)``."""
        return self.plugin_manager.hook

    def has_impl(self, hook_name: str) -> bool:
        """Return whether any loaded plugin implements ``hook_name`` (e.g. ``"step_end"``)."""
        caller = getattr(self.plugin_manager.hook, hook_name, None)
        return bool(caller is not None and caller.get_hookimpls())

    def caller(self, hook_name: str) -> Callable[..., list[Any]] | None:
        """Return pluggy's caller of ``hook_name``, or ``None`` when no loaded plugin implements it.

        A hot loop (``step_end``) resolves it once, after :meth:`load_all`, and skips the call
        entirely on ``None``.
        """
        hook_caller = getattr(self.plugin_manager.hook, hook_name, None)
        if hook_caller is None or hook_caller.spec is None:
            raise PluginError(f"no hook named '{hook_name}' in asklepios.hookspecs")
        return hook_caller if hook_caller.get_hookimpls() else None

    def only(self, hook_name: str, plugin_id: str) -> Any:
        """Return a caller of ``hook_name`` that reaches plugin ``plugin_id`` only."""
        pm = self.plugin_manager
        others = [plugin for name, plugin in pm.list_name_plugin() if name != plugin_id]
        return pm.subset_hook_caller(hook_name, remove_plugins=others)

    def lifecycle_plugins(self) -> list[str]:
        """Return the ids of loaded plugins that implement a lifecycle hook (they take part)."""
        hook = self.plugin_manager.hook
        ids = {
            impl.plugin_name
            for name in LIFECYCLE_HOOKS
            for impl in getattr(hook, name).get_hookimpls()
        }
        return sorted(ids)

    def call_each(self, hook_name: str, **kwargs: Any) -> dict[str, Any]:
        """Call ``hook_name`` on each loaded plugin apart; return plugin id -> its results.

        For hooks whose results are kept per plugin (``record_metadata``); plugins returning
        nothing are left out.
        """
        results: dict[str, Any] = {}
        for impl in getattr(self.plugin_manager.hook, hook_name).get_hookimpls():
            found = self.only(hook_name, impl.plugin_name)(**kwargs)
            if found:
                results[impl.plugin_name] = found[0] if len(found) == 1 else found
        return results

    @property
    def registry(self) -> Registry:
        """Return the component registry fed by activated plugins."""
        if self._registry is None:
            from asklepios.registry import Registry

            self._registry = Registry(require=self.require, activate_all=self._activate_usable)
        return self._registry

    # -- loading ---------------------------------------------------------------------------------

    def _fail(
        self, info: PluginInfo, status: str, error: str, fix: str, cause: BaseException
    ) -> None:
        info.mark(status, error, fix, cause)
        if self.strict:
            raise PluginLoadError(info.problem()) from cause

    @staticmethod
    def _raise_recorded(info: PluginInfo) -> None:
        cls = {
            PluginStatus.INCOMPATIBLE: IncompatiblePluginError,
            PluginStatus.DUPLICATE: DuplicatePluginError,
            PluginStatus.DISABLED: PluginDisabledError,
        }.get(info.status, PluginLoadError)
        raise cls(info.problem()) from info.cause

    def _import(self, info: PluginInfo) -> Any:
        if info.obj is not None:
            return info.obj
        if info.entry_point is None:
            return importlib.import_module(info.module)
        from stevedore import ExtensionManager, NamedExtensionManager

        if not self._stevedore_fresh:
            # stevedore caches the group per process; a host re-reads what is installed now.
            ExtensionManager.ENTRY_POINT_CACHE.pop(GROUP, None)
            self._stevedore_fresh = True
        failures: list[BaseException] = []
        manager: NamedExtensionManager[Any] = NamedExtensionManager(
            GROUP,
            names=[info.id],
            on_load_failure_callback=lambda _mgr, _ep, err: failures.append(err),
            on_missing_entrypoints_callback=None,
        )
        if failures:
            raise failures[0]
        for ext in manager.extensions:
            if ext.entry_point.value == info.module:
                return ext.plugin
        # stevedore memoises the group per sys.path for the whole process, so a distribution
        # installed after its first read is invisible to it; load the entry point the index found.
        return info.entry_point.load()

    def load(self, plugin_id: str) -> PluginInfo:
        """Import the plugin's hook module and register it with pluggy; record any failure.

        After this the plugin's lifecycle hooks take part in ``host.hook`` calls. Registration
        hooks have not run yet (see :meth:`activate`). Raises only in strict mode or for an id
        that is not installed.
        """
        info = self.info(plugin_id)
        if info.loaded or not info.is_usable:
            if self.strict and not info.is_usable and info.status != PluginStatus.DISABLED:
                self._raise_recorded(info)
            return info
        started = time.perf_counter()
        try:
            obj = self._import(info)
        except Exception as err:
            what = "import" if isinstance(err, ImportError) else "load"
            fix = (
                f"install the missing module ({err.name}) or reinstall {info.distribution}"
                if isinstance(err, ModuleNotFoundError)
                else f"fix or reinstall {info.distribution}, or disable it with --disable {info.id}"
            )
            self._fail(
                info, PluginStatus.FAILED, f"{what} failed: {type(err).__name__}: {err}", fix, err
            )
            return info
        finally:
            info.import_seconds = time.perf_counter() - started
        pm = self.plugin_manager
        try:
            pm.register(obj, name=plugin_id)
        except Exception as err:
            self._fail(
                info,
                PluginStatus.FAILED,
                f"pluggy rejected its hooks: {err}",
                "match the hook signatures in asklepios.hookspecs (see docs/hooks.md)",
                err,
            )
            return info
        try:
            pm.check_pending()
        except Exception as err:
            pm.unregister(name=plugin_id)
            self._fail(
                info,
                PluginStatus.FAILED,
                f"it implements a hook that does not exist: {err}",
                "check the hook name's spelling against docs/hooks.md",
                err,
            )
            return info
        info.loaded = True
        info.status = PluginStatus.OK
        return info

    def activate(self, plugin_id: str) -> PluginInfo:
        """Load the plugin and run its registration hooks, so its components are in the registry.

        Each registration hook is called through pluggy for this plugin alone, with a
        ``register`` bound to it. If any hook raises (or registers a name twice), none of the
        plugin's components are kept and it is unregistered from pluggy. Returns the record;
        raises only in strict mode or for an unknown id.
        """
        info = self.load(plugin_id)
        if info.activated or not info.loaded:
            return info
        from asklepios.registry import ComponentEntry

        staged: list[ComponentEntry] = []
        started = time.perf_counter()
        try:
            for kind, hook_name in REGISTRATION_HOOKS.items():
                register = self.registry.registrar(plugin_id, info.version, kind, staged)
                self.only(hook_name, plugin_id)(register=register)
        except Exception as err:
            self.plugin_manager.unregister(name=plugin_id)
            info.loaded = False
            self._fail(
                info,
                PluginStatus.FAILED,
                f"a registration hook raised {type(err).__name__}: {err}",
                f"fix {info.distribution}'s hooks, or disable it with --disable {info.id}",
                err,
            )
            return info
        finally:
            info.activate_seconds = time.perf_counter() - started
        for entry in staged:
            self.registry.add(entry)
            info.components[entry.kind] = info.components.get(entry.kind, 0) + 1
        info.activated = True
        return info

    def require(self, plugin_id: str) -> PluginInfo:
        """Activate the plugin or raise its recorded failure (what a config naming it needs)."""
        info = self.activate(plugin_id)
        if not info.activated:
            self._raise_recorded(info)
        return info

    def _each(self, step: Callable[[str], PluginInfo]) -> list[PluginInfo]:
        return [step(i.id) for i in self.plugins() if i.status != PluginStatus.DISABLED]

    def activate_all(self) -> list[PluginInfo]:
        """Activate every enabled plugin (component listings, bare-name lookups)."""
        return self._each(self.activate)

    def _activate_usable(self) -> list[str]:
        """Activate every usable plugin (raising in strict mode); return the others' problems."""
        for info in self.plugins():
            if info.is_usable:
                self.activate(info.id)
        return self.problems()

    def load_all(self) -> list[PluginInfo]:
        """Load every enabled plugin so cross-cutting lifecycle hooks take part in a run."""
        return self._each(self.load)

    def describe(self) -> Mapping[str, Any]:
        """Return versions of core, SDK and every indexed plugin (for run records)."""
        return {
            "asklepios": installed_version("asklepios"),
            "asklepios-sdk": installed_version("asklepios-sdk"),
            "plugins": {i.id: i.to_dict() for i in self.plugins()},
        }
