"""The component registry: kind -> ``<plugin-id>.<name>`` -> :class:`ComponentEntry`.

Plugins fill it only from their registration hooks, through a ``register`` callback bound to the
calling plugin (:meth:`Registry.registrar`), so every entry knows its plugin and version. Each
call is checked by the SDK's :func:`~asklepios_sdk.registration.check_registration` and the first
problem raised. Entries keep their implementation as a lazy reference: it is imported when the
component is built, and the one-line doc is read from its source when it is asked for.

The registry knows nothing of plugin discovery. It activates plugins through two callbacks the
host hands it: ``require(plugin_id)`` (activate one plugin, or raise why it cannot be used) and
``activate_all()`` (activate every usable plugin, returning one line per plugin that did not
load), so a full id ``longtail.focal`` activates plugin ``longtail`` only, and a bare ``focal``
activates every plugin and is accepted when exactly one component of the kind has that name.

Errors: :class:`~asklepios.errors.UnknownComponentError` (with "did you mean" and the installed
components of the kind), :class:`~asklepios.errors.AmbiguousComponentError`,
:class:`~asklepios.errors.DuplicateComponentError`, the providing plugin's own load error,
:class:`~asklepios.errors.ParamsError` and :class:`~asklepios.errors.BuildError` from ``build``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from asklepios_sdk import BuildContext, Params
from asklepios_sdk.registration import (
    KINDS,
    ComponentFactory,
    Registration,
    Target,
    check_registration,
    make_registration,
)
from pydantic import ValidationError

from asklepios._text import did_you_mean, matches, short_list
from asklepios.errors import (
    AmbiguousComponentError,
    BuildError,
    DuplicateComponentError,
    ParamsError,
    PluginError,
    RegistryError,
    UnknownComponentError,
    UnknownPluginError,
)

__all__ = ["KINDS", "ComponentEntry", "Registry", "format_params_errors"]


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
    """One registered component: its registration and the version of the plugin that made it.

    Attributes:
        registration: the checked ``register(...)`` call (kind, name, target, params, doc).
        plugin_version: the providing plugin's distribution version.
    """

    registration: Registration
    plugin_version: str

    @property
    def id(self) -> str:
        """Return the full id ``<plugin-id>.<name>``."""
        return self.registration.component_id

    @property
    def kind(self) -> str:
        """Return the component kind (``loss``, ``backbone``, ...)."""
        return self.registration.kind

    @property
    def name(self) -> str:
        """Return the bare name."""
        return self.registration.name

    @property
    def plugin_id(self) -> str:
        """Return the id of the plugin that registered it."""
        return self.registration.plugin_id

    @property
    def target(self) -> str:
        """Return the implementation as ``"module:qualname"``."""
        return self.registration.target_path

    @property
    def params_model(self) -> type[Params]:
        """Return the :class:`asklepios_sdk.Params` subclass validating its params."""
        return self.registration.params_model

    @cached_property
    def doc(self) -> str:
        """Return the one-line description (read from the target's source on first use)."""
        return self.registration.read_doc() or ""

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

    def factory(self, *, where: str = "") -> ComponentFactory:
        """Import the implementation and return it; raise :class:`BuildError` when it cannot be.

        Raises:
            BuildError: the target's module does not import or lacks the name (cause chained).
        """
        try:
            return self.registration.resolve()
        except (ImportError, AttributeError) as err:
            at = f" at {where}" if where else ""
            missing = getattr(err, "name", None) if isinstance(err, ImportError) else None
            fix = (
                f"install the missing module ({missing}) or reinstall plugin '{self.plugin_id}'"
                if missing
                else f"reinstall plugin '{self.plugin_id}', or report the broken target to it"
            )
            raise BuildError(
                f"{self.kind} '{self.id}'{at} (plugin {self.origin}): cannot import its "
                f"implementation '{self.target}': {type(err).__name__}: {err}. Fix: {fix}"
            ) from err

    def build(
        self,
        params: Mapping[str, Any] | Params | None,
        ctx: BuildContext,
        *,
        where: str = "",
    ) -> Any:
        """Validate ``params``, import the implementation and call it with ``(params, ctx)``.

        Raises:
            ParamsError: the params do not validate (names the key path, component and plugin).
            BuildError: the implementation does not import, or raised; the cause is chained.
        """
        validated = self.validate(params, where=where)
        factory = self.factory(where=where)
        try:
            return factory(validated, ctx)
        except Exception as err:
            at = f" at {where}" if where else ""
            raise BuildError(
                f"building {self.kind} '{self.id}'{at} (plugin {self.origin}) failed: "
                f"{type(err).__name__}: {err}"
            ) from err


Staged = list[ComponentEntry]


class Registry:
    """Components by kind and full id, activating plugins on demand through callbacks.

    Args:
        require: ``require(plugin_id)`` activates that plugin or raises why it cannot be used
            (:class:`~asklepios.errors.UnknownPluginError` when it is not installed).
        activate_all: activates every usable plugin and returns one line per plugin that did
            not load. Without callbacks the registry is passive (holds what is added).
    """

    def __init__(
        self,
        *,
        require: Callable[[str], object] | None = None,
        activate_all: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self._require = require
        self._activate_all = activate_all
        self._entries: dict[str, dict[str, ComponentEntry]] = {kind: {} for kind in KINDS}

    def registrar(
        self, plugin_id: str, plugin_version: str, kind: str, staged: Staged
    ) -> Callable[..., None]:
        """Return the ``register`` callback for one plugin's hook of ``kind``.

        Each call is checked (:func:`~asklepios_sdk.registration.check_registration`) and staged
        in ``staged``; the host commits them with :meth:`add` once every hook of the plugin ran.
        """

        def register(
            name: str, target: Target, params: type[Params] | None = None, doc: str | None = None
        ) -> None:
            reg = make_registration(plugin_id, kind, name, target, params, doc)
            problems = check_registration(reg, read_doc=False)
            where = f"plugin '{plugin_id}' registering {kind} {name!r}"
            if problems:
                raise RegistryError(f"{where}: {problems[0]}")
            for other in staged:
                if other.kind == kind and other.name == name:
                    raise DuplicateComponentError(
                        f"{kind} '{reg.component_id}' registered twice: by {other.target} and by "
                        f"{reg.target_path}; give one of them another name"
                    )
            staged.append(ComponentEntry(reg, plugin_version))

        return register

    def add(self, entry: ComponentEntry) -> None:
        """Add ``entry``; a taken id raises :class:`DuplicateComponentError` naming both."""
        self._check_kind(entry.kind)
        other = self._entries[entry.kind].get(entry.id)
        if other is not None:
            raise DuplicateComponentError(
                f"{entry.kind} '{entry.id}' registered twice: by {other.target} "
                f"({other.origin}) and by {entry.target} ({entry.origin})"
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

    def activate_all(self) -> list[str]:
        """Activate every usable plugin; return one line per plugin that did not load."""
        return list(self._activate_all()) if self._activate_all is not None else []

    def _unknown(self, kind: str, component_id: str, reason: str) -> UnknownComponentError:
        failed = self.activate_all()
        ids = list(self._entries[kind])
        hint = did_you_mean(component_id, ids)
        note = " Note: plugins that could provide it did not load: " + "; ".join(failed)
        return UnknownComponentError(
            f"unknown {kind} '{component_id}': {reason}."
            + (f" {hint}" if hint else "")
            + f" Installed {kind} components: {short_list(ids)}."
            + (note if failed else "")
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
        if self._require is not None:
            try:
                self._require(plugin_id)
            except UnknownPluginError:
                raise self._unknown(
                    kind, component_id, f"no plugin '{plugin_id}' is installed"
                ) from None
            except PluginError as err:
                raise type(err)(f"{kind} '{component_id}' comes from {err}") from err.__cause__
        entry = self._entries[kind].get(component_id)
        if entry is None:
            reason = f"plugin '{plugin_id}' registers no such {kind}"
            raise self._unknown(kind, component_id, reason)
        return entry

    def _get_bare(self, kind: str, name: str) -> ComponentEntry:
        self.activate_all()
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
        self.activate_all()
        return [e for e in self.entries(kind) if matches(e.id, pattern)]
