"""Plugin discovery, isolated activation and the pluggy hook relay.

Finding plugins and importing them are separate steps. The *index* lists every plugin of the
entry-point group ``asklepios.plugins`` (entry name = plugin id, value = its hook module) with its
distribution, version, location and the ``asklepios`` / ``asklepios-sdk`` ranges it declares in
``Requires-Dist``; building it imports no plugin and no torch. A plugin is imported (through
stevedore) only when it is *loaded*: when a config names one of its components or a listing of
components is asked for. The core's own components are plugin ``core``, hook module
``asklepios.builtins.hooks``, loaded through exactly the same path.

Every load is isolated: an incompatible declared range (checked with ``packaging`` before import),
an import error, a hook pluggy rejects (misspelled hook names fail through ``check_pending()``) or a
registration hook that raises is recorded on the plugin's :class:`PluginInfo` and the plugin is
skipped; only a config that names it fails, with that cause. In strict mode (``strict=True``,
``--strict`` or ``ASKLEPIOS_STRICT_PLUGINS=1``) the failure is raised at once.

Public API (stable):

* :class:`PluginInfo` -- one index record (``id``, ``distribution``, ``version``, ``location``,
  ``core_range``, ``status``, ``error``, ...); :meth:`PluginInfo.to_dict` for ``--json``.
* :class:`PluginHost` -- ``index`` / ``plugins()`` / ``info(id)``; ``load(id)`` (import + pluggy
  registration, so the plugin's lifecycle hooks take part), ``activate(id)`` (load + registration
  hooks, so its components are in ``registry``), ``activate_all()``, ``load_all()``,
  ``require(id)`` (activate or raise the recorded cause); ``registry``; ``hook`` (the pluggy relay:
  ``host.hook.run_start(run=...)``); ``has_impl("step_end")`` so a hot loop can skip a hook nobody
  implements, and ``caller("step_end")`` resolving it into a plain function (or ``None``);
  ``add_plugin(obj, id)`` for in-memory plugins (tests, notebooks).
* :func:`get_host` / :func:`set_host` / :func:`reset_host` -- the process-wide host the CLI, the
  config loader and the engine share.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asklepios_sdk.registration import REGISTRATION_HOOKS

from asklepios._text import did_you_mean, short_list

if TYPE_CHECKING:
    from importlib.metadata import Distribution, EntryPoint

    import pluggy

    from asklepios.registry import Registry

__all__ = [
    "BUILTINS_MODULE",
    "CORE_PLUGIN_ID",
    "DISABLE_ENV",
    "GROUP",
    "REGISTRATION_HOOKS",
    "STRICT_ENV",
    "TRACE_ENV",
    "PluginHost",
    "PluginInfo",
    "PluginStatus",
    "disabled_from_env",
    "get_host",
    "is_strict",
    "reset_host",
    "set_host",
]

GROUP = "asklepios.plugins"
"""Entry-point group plugins declare: ``<plugin-id> = "<package>.hooks"``."""
CORE_PLUGIN_ID = "core"
BUILTINS_MODULE = "asklepios.builtins.hooks"
STRICT_ENV = "ASKLEPIOS_STRICT_PLUGINS"
DISABLE_ENV = "ASKLEPIOS_DISABLE_PLUGINS"
TRACE_ENV = "ASKLEPIOS_TRACE_HOOKS"


_PLUGIN_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_CORE_REQUIREMENT = re.compile(
    r"^\s*(?P<name>asklepios(?:[-_.]+sdk)?)(?=\s*(?:\[|\(|[<>=!~]|;|$))\s*(?:\[[^\]]*\])?"
    r"\s*\(?\s*(?P<spec>[^;()]*?)\s*\)?\s*(?:;\s*(?P<marker>.*))?$",
    re.IGNORECASE,
)


def _errors() -> Any:
    """Return :mod:`asklepios.errors`, imported only when raising: it pulls in pydantic."""
    from asklepios import errors

    return errors


class PluginStatus:
    """The values of :attr:`PluginInfo.status`."""

    NOT_LOADED = "not loaded"
    OK = "ok"
    FAILED = "failed"
    INCOMPATIBLE = "incompatible"
    DISABLED = "disabled"
    DUPLICATE = "duplicate"


@dataclass
class PluginInfo:
    """What the index knows about one plugin, and what happened when it was loaded.

    Attributes:
        id: the plugin id (entry-point name); component ids are ``<id>.<name>``.
        distribution: the distribution that declares it (``asklepios`` for ``core``).
        version: the distribution's version.
        location: where its code lives (the project directory of an editable install).
        module: the hook module (entry-point value).
        core_range: the specifier the plugin declares on ``asklepios``, if any.
        sdk_range: the specifier the plugin declares on ``asklepios-sdk``, if any.
        builtin: whether this is the core's own plugin.
        status: one of :class:`PluginStatus`.
        error: one-line cause when the status is not ``ok`` / ``not loaded``.
        fix: what the user can do about ``error``.
        cause: the exception behind ``error`` (not serialised).
        import_seconds: wall time of importing the hook module.
        activate_seconds: wall time of its registration hooks (they import its families).
        vcs_commit: commit id from ``direct_url.json`` when installed from VCS.
        components: number of registered components per kind once activated.
        activated: whether its registration hooks ran successfully.
    """

    id: str
    distribution: str
    version: str
    location: str | None = None
    module: str = ""
    core_range: str | None = None
    sdk_range: str | None = None
    builtin: bool = False
    status: str = PluginStatus.NOT_LOADED
    error: str | None = None
    fix: str | None = None
    cause: BaseException | None = field(default=None, repr=False, compare=False)
    import_seconds: float | None = None
    activate_seconds: float | None = None
    vcs_commit: str | None = None
    components: dict[str, int] = field(default_factory=dict)
    activated: bool = False
    entry_point: EntryPoint | None = field(default=None, repr=False, compare=False)
    obj: Any = field(default=None, repr=False, compare=False)
    loaded: bool = field(default=False, repr=False)

    @property
    def label(self) -> str:
        """Return ``"<distribution> <version>"``, as messages name a plugin."""
        return f"{self.distribution} {self.version}"

    @property
    def is_usable(self) -> bool:
        """Return whether the plugin has not failed (it may still be unloaded)."""
        return self.status in (PluginStatus.OK, PluginStatus.NOT_LOADED)

    def problem(self) -> str:
        """Return the failure as one message: which plugin, which version, why, what to do."""
        state = {
            PluginStatus.FAILED: "failed to load",
            PluginStatus.DUPLICATE: "is declared twice",
        }.get(self.status, f"is {self.status}")
        text = f"plugin '{self.id}' ({self.label}) {state}: {self.error}"
        if self.fix:
            text += f". Fix: {self.fix}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable record (``asklepios plugins list --json``)."""
        return {
            "id": self.id,
            "distribution": self.distribution,
            "version": self.version,
            "core_range": self.core_range,
            "sdk_range": self.sdk_range,
            "status": self.status,
            "error": self.error,
            "fix": self.fix,
            "location": self.location,
            "module": self.module,
            "builtin": self.builtin,
            "vcs_commit": self.vcs_commit,
            "import_seconds": self.import_seconds,
            "activate_seconds": self.activate_seconds,
            "components": dict(self.components),
        }


def is_strict(value: bool | None = None) -> bool:
    """Return the strict switch: ``value`` when given, else ``ASKLEPIOS_STRICT_PLUGINS``."""
    if value is not None:
        return value
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def disabled_from_env() -> frozenset[str]:
    """Return the plugin ids listed in ``ASKLEPIOS_DISABLE_PLUGINS`` (comma or space separated)."""
    raw = os.environ.get(DISABLE_ENV, "")
    return frozenset(part for part in re.split(r"[,\s]+", raw) if part)


def _installed_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "0+unknown"


def _declared_ranges(dist: Distribution) -> tuple[str | None, str | None]:
    """Return the specifiers ``dist`` declares on ``asklepios`` and ``asklepios-sdk``."""
    core: str | None = None
    sdk: str | None = None
    for line in dist.requires or ():
        match = _CORE_REQUIREMENT.match(line)
        if match is None:
            continue
        if match["marker"]:
            from packaging.markers import InvalidMarker, Marker

            try:
                if not Marker(match["marker"]).evaluate({"extra": ""}):
                    continue
            except InvalidMarker:
                continue
        spec = re.sub(r"\s+", "", match["spec"]) or None
        if re.sub(r"[-_.]+", "-", match["name"].lower()) == "asklepios":
            core = spec
        else:
            sdk = spec
    return core, sdk


def _direct_url(dist: Distribution) -> tuple[str | None, str | None]:
    """Return (project directory of an editable/local install, VCS commit) when recorded."""
    try:
        text = dist.read_text("direct_url.json")
    except OSError:
        text = None
    if not text:
        return None, None
    try:
        data = json.loads(text)
    except ValueError:
        return None, None
    url = data.get("url", "")
    location = url[len("file://") :] if url.startswith("file://") else None
    commit = (data.get("vcs_info") or {}).get("commit_id")
    return location, commit


def _check_range(
    info: PluginInfo, spec: str | None, name: str, installed: str
) -> tuple[str, str] | None:
    """Return (error, fix) when ``installed`` is outside the plugin's declared ``spec``."""
    if not spec or installed == "0+unknown":
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        ok = SpecifierSet(spec).contains(installed, prereleases=True)
    except InvalidSpecifier:
        return None
    if ok:
        return None
    error = f"{info.label} requires {name}{spec}; you have {installed}"
    fix = (
        f"install a release of {info.distribution} made for {name} {installed} "
        f"(pip install -U {info.distribution}), or install '{name}{spec}', "
        f"or disable it with --disable {info.id}"
    )
    return error, fix


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
            self._index = self._build_index()
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
            raise _errors().UnknownPluginError(
                f"no plugin '{plugin_id}' is installed."
                + (f" {hint}" if hint else "")
                + f" Installed plugins: {short_list(self.index)}. Fix: pip install the "
                "distribution that provides it, then check `asklepios plugins list`"
            ) from None

    def failures(self) -> list[PluginInfo]:
        """Return the plugins that failed, are incompatible, duplicated or disabled."""
        return [i for i in self.plugins() if not i.is_usable]

    def _build_index(self) -> dict[str, PluginInfo]:
        index: dict[str, PluginInfo] = {}
        if self._builtins:
            index[CORE_PLUGIN_ID] = PluginInfo(
                id=CORE_PLUGIN_ID,
                distribution="asklepios",
                version=_installed_version("asklepios"),
                location=str(Path(__file__).resolve().parent),
                module=BUILTINS_MODULE,
                builtin=True,
            )
        if self._discover:
            for dist, ep in self._entry_points():
                self._add_entry_point(index, dist, ep)
        for plugin_id, info in self._extra.items():
            index[plugin_id] = info
        core_version = _installed_version("asklepios")
        sdk_version = _installed_version("asklepios-sdk")
        for info in index.values():
            if info.status != PluginStatus.NOT_LOADED:
                continue
            if info.id in self.disabled:
                info.status = PluginStatus.DISABLED
                info.error = "disabled by --disable or " + DISABLE_ENV
                info.fix = f"remove '{info.id}' from --disable / {DISABLE_ENV}"
                continue
            for spec, name, installed in (
                (info.core_range, "asklepios", core_version),
                (info.sdk_range, "asklepios-sdk", sdk_version),
            ):
                mismatch = _check_range(info, spec, name, installed)
                if mismatch:
                    info.status = PluginStatus.INCOMPATIBLE
                    info.error, info.fix = mismatch
                    break
        return index

    def _entry_points(self) -> list[tuple[Distribution, EntryPoint]]:
        """Return (distribution, entry point) of the group, first distribution of a name wins."""
        from importlib.metadata import distributions

        found: list[tuple[Distribution, EntryPoint]] = []
        seen: set[str] = set()
        found_dists = (
            distributions() if self._search_path is None else distributions(path=self._search_path)
        )
        for dist in found_dists:
            eps = dist.entry_points.select(group=GROUP)
            if not eps:
                continue
            name = re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "")).lower()
            if name in seen:
                continue
            seen.add(name)
            found.extend((dist, ep) for ep in eps)
        return found

    def _add_entry_point(
        self, index: dict[str, PluginInfo], dist: Distribution, ep: EntryPoint
    ) -> None:
        dist_name = dist.metadata["Name"] or "<unknown>"
        core_range, sdk_range = _declared_ranges(dist)
        project_dir, commit = _direct_url(dist)
        location = project_dir or str(dist.locate_file(""))
        info = PluginInfo(
            id=ep.name,
            distribution=dist_name,
            version=dist.version,
            location=location,
            module=ep.value,
            core_range=core_range,
            sdk_range=sdk_range,
            vcs_commit=commit,
            entry_point=ep,
        )
        if not _PLUGIN_ID.match(ep.name):
            info.status = PluginStatus.FAILED
            info.error = f"invalid plugin id '{ep.name}' (use lowercase letters, digits and '_')"
            info.fix = f"rename the entry point in {dist_name}'s [{GROUP}] table"
        previous = index.get(ep.name)
        if previous is None:
            index[ep.name] = info
            return
        error = (
            f"plugin id '{ep.name}' is declared by two distributions: {previous.label} "
            f"({previous.location}) and {info.label} ({info.location})"
        )
        fix = f"uninstall one of them (pip uninstall {info.distribution})"
        if self.strict:
            raise _errors().DuplicatePluginError(f"{error}. Fix: {fix}")
        previous.status = PluginStatus.DUPLICATE
        previous.error, previous.fix = error, fix

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
        if not _PLUGIN_ID.match(plugin_id):
            raise _errors().PluginLoadError(
                f"invalid plugin id '{plugin_id}': use lowercase letters, digits and '_'"
            )
        if plugin_id in self.index:
            other = self.index[plugin_id]
            raise _errors().DuplicatePluginError(
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
            info.status = PluginStatus.DISABLED
            info.error = "disabled by --disable or " + DISABLE_ENV
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

            pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
            pm.add_hookspecs(hookspecs)
            if os.environ.get(TRACE_ENV, "").strip() not in ("", "0"):
                # every hook call and its result on stderr, like datasette's hook tracing
                import sys

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
        """Resolve ``hook_name`` now into a plain function, or ``None`` if nobody implements it.

        For hot paths (``step_end``): the loop resolves once, after :meth:`load_all`, skips the
        call entirely on ``None``, and otherwise pays one Python call per implementation instead
        of pluggy's dispatch. Call it by keyword like the relay; it returns the non-``None``
        results in pluggy's order. Hooks with wrappers or ``firstresult`` get pluggy's caller.
        Plugins loaded after resolving are not seen.
        """
        hook_caller = getattr(self.plugin_manager.hook, hook_name, None)
        if hook_caller is None or hook_caller.spec is None:
            raise _errors().PluginError(f"no hook named '{hook_name}' in asklepios.hookspecs")
        impls = hook_caller.get_hookimpls()
        if not impls:
            return None
        if hook_caller.spec.opts.get("firstresult") or any(
            impl.hookwrapper or impl.wrapper for impl in impls
        ):
            return hook_caller
        ordered = [(impl.function, tuple(impl.argnames)) for impl in reversed(impls)]
        if len(ordered) == 1:
            function, names = ordered[0]

            def call_one(**kwargs: Any) -> list[Any]:
                result = function(*[kwargs[name] for name in names])
                return [] if result is None else [result]

            return call_one

        def call_all(**kwargs: Any) -> list[Any]:
            results = []
            for function, names in ordered:
                result = function(*[kwargs[name] for name in names])
                if result is not None:
                    results.append(result)
            return results

        return call_all

    @property
    def registry(self) -> Registry:
        """Return the component registry fed by activated plugins."""
        if self._registry is None:
            from asklepios.registry import Registry

            self._registry = Registry(self)
        return self._registry

    # -- loading ---------------------------------------------------------------------------------

    def _fail(self, info: PluginInfo, status: str, error: str, fix: str, cause: BaseException):
        info.status, info.error, info.fix, info.cause = status, error, fix, cause
        if self.strict:
            raise _errors().PluginLoadError(info.problem()) from cause

    def _raise_recorded(self, info: PluginInfo) -> None:
        cls = {
            PluginStatus.INCOMPATIBLE: _errors().IncompatiblePluginError,
            PluginStatus.DUPLICATE: _errors().DuplicatePluginError,
            PluginStatus.DISABLED: _errors().PluginDisabledError,
        }.get(info.status, _errors().PluginLoadError)
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

        Each registration hook gets a ``register`` bound to this plugin. If any hook raises (or
        registers a name twice), none of the plugin's components are kept and it is unregistered
        from pluggy. Returns the record; raises only in strict mode or for an unknown id.
        """
        info = self.load(plugin_id)
        if info.activated or not info.loaded:
            return info
        from asklepios.registry import ComponentEntry

        obj = self.plugin_manager.get_plugin(plugin_id)
        staged: list[ComponentEntry] = []
        started = time.perf_counter()
        try:
            for kind, hook_name in REGISTRATION_HOOKS.items():
                caller = getattr(self.plugin_manager.hook, hook_name)
                register = self.registry.registrar(kind, info, staged)
                for impl in caller.get_hookimpls():
                    if impl.plugin is obj:
                        impl.function(**{arg: register for arg in impl.argnames})
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
        done = []
        for info in self.plugins():
            if info.status == PluginStatus.DISABLED:
                continue
            done.append(step(info.id))
        return done

    def activate_all(self) -> list[PluginInfo]:
        """Activate every enabled plugin (component listings, bare-name lookups)."""
        return self._each(self.activate)

    def load_all(self) -> list[PluginInfo]:
        """Load every enabled plugin so cross-cutting lifecycle hooks take part in a run."""
        return self._each(self.load)

    def describe(self) -> Mapping[str, Any]:
        """Return versions of core, SDK and every indexed plugin (for run records)."""
        return {
            "asklepios": _installed_version("asklepios"),
            "asklepios-sdk": _installed_version("asklepios-sdk"),
            "plugins": {i.id: i.to_dict() for i in self.plugins()},
        }


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
