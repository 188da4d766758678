"""The component registry: kind -> ``<plugin-id>.<name>`` -> :class:`ComponentEntry`.

Plugins fill it only from their registration hooks, through a ``register`` callback the host binds
to the calling plugin, so every entry knows its plugin and version. Lookups activate plugins
lazily: a full id ``longtail.focal`` activates plugin ``longtail`` only; a bare name ``focal``
activates every plugin and is accepted when exactly one component of the kind has that name.

Public API (stable):

* :data:`KINDS` -- the component kinds, singular as in configs.
* :class:`ComponentEntry` -- ``id`` (full), ``kind``, ``name``, ``plugin_id``, ``plugin_version``,
  ``factory``, ``params_model``, ``doc``; ``validate(params)``; ``build(params, ctx)``.
* :class:`Registry` -- ``get(kind, id)`` / ``resolve_id(kind, id)`` / ``list(kind, pattern)``.
* :func:`get_component` / :func:`list_components` -- the same on the process-wide host.

Errors: :class:`~asklepios.errors.UnknownComponentError` (with "did you mean" and the installed
components of the kind), :class:`~asklepios.errors.AmbiguousComponentError`,
:class:`~asklepios.errors.DuplicateComponentError` (naming both factories),
:class:`~asklepios.errors.PluginLoadError` when the providing plugin failed (with its cause),
:class:`~asklepios.errors.ParamsError` and :class:`~asklepios.errors.BuildError` from ``build``.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asklepios_sdk import BuildContext, EmptyParams, Params
from pydantic import BaseModel, ValidationError

from asklepios._text import did_you_mean, matches, short_list
from asklepios.errors import (
    AmbiguousComponentError,
    BuildError,
    DuplicateComponentError,
    ParamsError,
    PluginLoadError,
    RegistryError,
    UnknownComponentError,
)
from asklepios.plugins import REGISTRATION_HOOKS, PluginStatus

if TYPE_CHECKING:
    from asklepios.plugins import PluginHost, PluginInfo

__all__ = [
    "KINDS",
    "ComponentEntry",
    "Registry",
    "format_params_errors",
    "get_component",
    "list_components",
]

KINDS: tuple[str, ...] = tuple(REGISTRATION_HOOKS)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def _qualname(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{name}"


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def format_params_errors(err: ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """Return ``(location, message)`` pairs of a pydantic error, with the offending input."""
    out = []
    for item in err.errors(include_url=False):
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown parameter"
        elif "input" in item and item["type"] != "missing":
            shown = repr(item["input"])
            msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        out.append((tuple(item["loc"]), msg))
    return out


@dataclass(frozen=True)
class ComponentEntry:
    """One registered component.

    Attributes:
        id: full id ``<plugin-id>.<name>``.
        kind: the component kind (``loss``, ``backbone``, ...).
        name: the bare name.
        plugin_id: the plugin that registered it.
        plugin_version: that plugin's distribution version.
        factory: ``factory(params, ctx) -> component``.
        params_model: the :class:`asklepios_sdk.Params` subclass validating its params.
        doc: one-line description.
    """

    id: str
    kind: str
    name: str
    plugin_id: str
    plugin_version: str
    factory: Callable[[Any, BuildContext], Any]
    params_model: type[Params]
    doc: str

    @property
    def origin(self) -> str:
        """Return ``"<plugin-id> <version>"`` for messages."""
        return f"{self.plugin_id} {self.plugin_version}"

    def params_field_names(self) -> list[str]:
        """Return the names of the params model's fields."""
        return list(self.params_model.model_fields)

    def validate(self, params: Mapping[str, Any] | Params | None, *, where: str = "") -> Params:
        """Validate ``params`` with the params model; raise :class:`ParamsError` naming each key.

        Args:
            params: raw mapping from a config (or an already validated params instance).
            where: config key path of the component (``loss``), prefixed to every key in errors.
        """
        if isinstance(params, self.params_model):
            return params
        try:
            return self.params_model.model_validate(dict(params or {}))
        except ValidationError as err:
            prefix = f"{where}." if where else ""
            lines = [
                f"{prefix}{'.'.join(map(str, loc)) or '<params>'}: {msg}"
                for loc, msg in format_params_errors(err)
            ]
            fields = short_list(self.params_field_names())
            raise ParamsError(
                f"invalid params for {self.kind} '{self.id}' (plugin {self.origin}): "
                + "; ".join(lines)
                + f". Known parameters: {fields} (see `asklepios plugins show {self.plugin_id}`)"
            ) from err

    def build(
        self,
        params: Mapping[str, Any] | Params | None,
        ctx: BuildContext,
        *,
        where: str = "",
    ) -> Any:
        """Validate ``params`` and call the factory with them and ``ctx``.

        Raises:
            ParamsError: the params do not validate (names the key path, component and plugin).
            BuildError: the factory raised; the original exception is chained.
        """
        validated = self.validate(params, where=where)
        try:
            return self.factory(validated, ctx)
        except Exception as err:
            at = f" at {where}" if where else ""
            raise BuildError(
                f"building {self.kind} '{self.id}'{at} (plugin {self.origin}) failed: "
                f"{type(err).__name__}: {err}"
            ) from err


class _Registrar:
    """The ``register`` callback handed to one plugin's registration hook for one kind."""

    def __init__(self, kind: str, info: PluginInfo, staged: list[ComponentEntry]) -> None:
        self._kind = kind
        self._info = info
        self._staged = staged

    def __call__(
        self,
        name: str,
        factory: Callable[[Any, BuildContext], Any],
        params: type[Params] | None = None,
        doc: str | None = None,
    ) -> None:
        where = f"plugin '{self._info.id}' registering {self._kind} {name!r}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(
                f"{where}: names are bare lowercase snake_case (no dot; the plugin id is "
                "prefixed automatically)"
            )
        if not callable(factory):
            raise RegistryError(f"{where}: factory {factory!r} is not callable")
        model = EmptyParams if params is None else params
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise RegistryError(f"{where}: params must be a Params subclass, got {model!r}")
        if not issubclass(model, Params) and model.model_config.get("extra") != "forbid":
            raise RegistryError(
                f"{where}: params model {model.__name__} must derive from asklepios_sdk.Params "
                "(unknown keys must be rejected)"
            )
        full = f"{self._info.id}.{name}"
        for other in self._staged:
            if other.kind == self._kind and other.id == full:
                raise DuplicateComponentError(
                    f"{self._kind} '{full}' registered twice: by {_qualname(other.factory)} and "
                    f"by {_qualname(factory)}; give one of them another name"
                )
        self._staged.append(
            ComponentEntry(
                id=full,
                kind=self._kind,
                name=name,
                plugin_id=self._info.id,
                plugin_version=self._info.version,
                factory=factory,
                params_model=model,
                doc=doc if doc is not None else _first_line(factory),
            )
        )


class Registry:
    """Components by kind and full id, activating the host's plugins on demand.

    Args:
        host: the plugin host to activate plugins through; ``None`` for a passive registry.
    """

    def __init__(self, host: PluginHost | None = None) -> None:
        self._host = host
        self._entries: dict[str, dict[str, ComponentEntry]] = {kind: {} for kind in KINDS}

    def registrar(
        self, kind: str, info: PluginInfo, staged: list[ComponentEntry]
    ) -> Callable[..., None]:
        """Return a ``register`` callback bound to plugin ``info`` and ``kind``."""
        return _Registrar(kind, info, staged)

    def add(self, entry: ComponentEntry) -> None:
        """Add ``entry``; a taken id raises :class:`DuplicateComponentError` naming both."""
        self._check_kind(entry.kind)
        other = self._entries[entry.kind].get(entry.id)
        if other is not None:
            raise DuplicateComponentError(
                f"{entry.kind} '{entry.id}' registered twice: by {_qualname(other.factory)} "
                f"({other.origin}) and by {_qualname(entry.factory)} ({entry.origin})"
            )
        self._entries[entry.kind][entry.id] = entry

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            hint = did_you_mean(kind, KINDS)
            raise RegistryError(
                f"unknown component kind '{kind}'."
                + (f" {hint}" if hint else "")
                + f" Kinds: {', '.join(KINDS)}."
            )

    def _activate_all_quietly(self) -> None:
        if self._host is None:
            return
        for info in self._host.plugins():
            if info.is_usable and not info.activated:
                try:
                    self._host.activate(info.id)
                except Exception:
                    continue  # the failure stays on the plugin's record

    def _failed_plugins_note(self) -> str:
        if self._host is None:
            return ""
        failed = [i for i in self._host.plugins() if i.status != PluginStatus.OK and i.error]
        if not failed:
            return ""
        return " Note: plugins that could provide it did not load: " + "; ".join(
            f"'{i.id}' ({i.label}): {i.error}" for i in failed
        )

    def _unknown(self, kind: str, component_id: str, reason: str) -> UnknownComponentError:
        self._activate_all_quietly()
        ids = list(self._entries[kind])
        hint = did_you_mean(component_id, ids)
        return UnknownComponentError(
            f"unknown {kind} '{component_id}': {reason}."
            + (f" {hint}" if hint else "")
            + f" Installed {kind} components: {short_list(ids)}."
            + self._failed_plugins_note()
        )

    def resolve_id(self, kind: str, component_id: str) -> str:
        """Return the full id of ``component_id`` (bare names resolve when unique)."""
        return self.get(kind, component_id).id

    def get(self, kind: str, component_id: str) -> ComponentEntry:
        """Return the entry of ``component_id`` of ``kind``, activating its plugin if needed.

        Raises:
            UnknownComponentError: no such component (with suggestions and the installed list).
            AmbiguousComponentError: a bare name several plugins provide (lists the full ids).
            PluginLoadError: the plugin providing it failed to load (with the cause and fix).
        """
        self._check_kind(kind)
        if not isinstance(component_id, str) or not component_id:
            raise UnknownComponentError(f"{kind} id must be a non-empty string")
        plugin_id, dot, _name = component_id.partition(".")
        if dot:
            return self._get_full(kind, component_id, plugin_id)
        return self._get_bare(kind, component_id)

    def _get_full(self, kind: str, component_id: str, plugin_id: str) -> ComponentEntry:
        host = self._host
        if host is not None:
            if plugin_id not in host.index:
                raise self._unknown(kind, component_id, f"no plugin '{plugin_id}' is installed")
            info = host.activate(plugin_id)
            if not info.activated:
                raise PluginLoadError(
                    f"{kind} '{component_id}' comes from {info.problem()}"
                ) from info.cause
        entry = self._entries[kind].get(component_id)
        if entry is None:
            reason = f"plugin '{plugin_id}' registers no such {kind}"
            raise self._unknown(kind, component_id, reason)
        return entry

    def _get_bare(self, kind: str, name: str) -> ComponentEntry:
        if self._host is not None:
            self._host.activate_all()
        found = [e for e in self._entries[kind].values() if e.name == name]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = sorted(e.id for e in found)
            raise AmbiguousComponentError(
                f"{kind} name '{name}' is provided by several plugins: {', '.join(ids)}; "
                f"write the full id, e.g. '{ids[0]}'"
            )
        raise self._unknown(kind, name, f"no plugin registers a {kind} named '{name}'")

    def entries(self, kind: str | None = None) -> list[ComponentEntry]:
        """Return the entries registered so far (activates nothing), sorted by kind and id."""
        kinds = KINDS if kind is None else (kind,)
        for k in kinds:
            self._check_kind(k)
        return [self._entries[k][i] for k in kinds for i in sorted(self._entries[k])]

    def list(self, kind: str | None = None, pattern: str | None = None) -> list[ComponentEntry]:
        """Activate every plugin and return the matching entries.

        Args:
            kind: one kind, or every kind when ``None``.
            pattern: shell-style wildcard on the full id (``"*focal*"``); a plain word matches
                as a substring.
        """
        if self._host is not None:
            self._host.activate_all()
        return [e for e in self.entries(kind) if matches(e.id, pattern)]


def get_component(kind: str, component_id: str) -> ComponentEntry:
    """Return the entry of ``component_id`` from the process-wide host's registry."""
    from asklepios.plugins import get_host

    return get_host().registry.get(kind, component_id)


def list_components(kind: str | None = None, pattern: str | None = None) -> list[ComponentEntry]:
    """Return every installed component of ``kind`` matching ``pattern`` (activates plugins)."""
    from asklepios.plugins import get_host

    return get_host().registry.list(kind, pattern)
