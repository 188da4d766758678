"""The plugin index: what is installed, read from distribution metadata, importing no plugin.

Every plugin of the entry-point group ``asklepios.plugins`` (entry name = plugin id, value = its
hook module) becomes a :class:`PluginInfo` with its distribution, version, location and the
``asklepios`` / ``asklepios-sdk`` ranges it declares in ``Requires-Dist``; a range the installed
core or SDK falls outside marks it ``incompatible`` before anything is imported. Two distributions
declaring one id are an error naming both. Building the index imports neither torch, pydantic nor
any plugin, so ``asklepios plugins list`` stays fast.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asklepios_sdk.registration import PLUGIN_ID_PATTERN

from asklepios.errors import DuplicatePluginError

if TYPE_CHECKING:
    from importlib.metadata import Distribution, EntryPoint

__all__ = [
    "BUILTINS_MODULE",
    "CORE_PLUGIN_ID",
    "DISABLE_ENV",
    "GROUP",
    "STRICT_ENV",
    "TRACE_ENV",
    "PluginInfo",
    "PluginStatus",
    "build_index",
    "core_info",
    "disabled_from_env",
    "installed_version",
    "is_strict",
]

GROUP = "asklepios.plugins"
"""Entry-point group plugins declare: ``<plugin-id> = "<package>.hooks"``."""
CORE_PLUGIN_ID = "core"
BUILTINS_MODULE = "asklepios.builtins.hooks"
STRICT_ENV = "ASKLEPIOS_STRICT_PLUGINS"
DISABLE_ENV = "ASKLEPIOS_DISABLE_PLUGINS"
TRACE_ENV = "ASKLEPIOS_TRACE_HOOKS"

_CORE_REQUIREMENT = re.compile(
    r"^\s*(?P<name>asklepios(?:[-_.]+sdk)?)(?=\s*(?:\[|\(|[<>=!~]|;|$))\s*(?:\[[^\]]*\])?"
    r"\s*\(?\s*(?P<spec>[^;()]*?)\s*\)?\s*(?:;\s*(?P<marker>.*))?$",
    re.IGNORECASE,
)


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
        activate_seconds: wall time of its registration hooks.
        vcs_commit: commit id from ``direct_url.json`` when installed from VCS.
        components: number of registered components per kind once activated.
        activated: whether its registration hooks ran successfully.
        entry_point: the entry point the index found (None for ``core`` and in-memory plugins).
        obj: the hook object of an in-memory plugin.
        loaded: whether the hook module is imported and registered with pluggy.
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

    def mark(self, status: str, error: str, fix: str, cause: BaseException | None = None) -> None:
        """Record a failure (or a disabled/incompatible state) with its cause and fix."""
        self.status, self.error, self.fix, self.cause = status, error, fix, cause

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


def installed_version(name: str) -> str:
    """Return the installed version of distribution ``name``, or ``0+unknown``."""
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


def _range_problem(
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


def _entry_points(search_path: list[str] | None) -> list[tuple[Distribution, EntryPoint]]:
    """Return (distribution, entry point) of the group; the first distribution of a name wins."""
    from importlib.metadata import distributions

    found: list[tuple[Distribution, EntryPoint]] = []
    seen: set[str] = set()
    dists = distributions() if search_path is None else distributions(path=search_path)
    for dist in dists:
        eps = dist.entry_points.select(group=GROUP)
        if not eps:
            continue
        name = re.sub(r"[-_.]+", "-", (dist.metadata["Name"] or "")).lower()
        if name in seen:
            continue
        seen.add(name)
        found.extend((dist, ep) for ep in eps)
    return found


def _info_from_entry_point(dist: Distribution, ep: EntryPoint) -> PluginInfo:
    dist_name = dist.metadata["Name"] or "<unknown>"
    core_range, sdk_range = _declared_ranges(dist)
    project_dir, commit = _direct_url(dist)
    info = PluginInfo(
        id=ep.name,
        distribution=dist_name,
        version=dist.version,
        location=project_dir or str(dist.locate_file("")),
        module=ep.value,
        core_range=core_range,
        sdk_range=sdk_range,
        vcs_commit=commit,
        entry_point=ep,
    )
    if not PLUGIN_ID_PATTERN.match(ep.name):
        info.mark(
            PluginStatus.FAILED,
            f"invalid plugin id '{ep.name}' (use lowercase letters, digits and '_')",
            f"rename the entry point in {dist_name}'s [{GROUP}] table",
        )
    return info


def _add(index: dict[str, PluginInfo], info: PluginInfo, strict: bool) -> None:
    previous = index.get(info.id)
    if previous is None:
        index[info.id] = info
        return
    error = (
        f"plugin id '{info.id}' is declared by two distributions: {previous.label} "
        f"({previous.location}) and {info.label} ({info.location})"
    )
    fix = f"uninstall one of them (pip uninstall {info.distribution})"
    if strict:
        raise DuplicatePluginError(f"{error}. Fix: {fix}")
    previous.mark(PluginStatus.DUPLICATE, error, fix)


def core_info() -> PluginInfo:
    """Return the record of plugin ``core``: the core's built-in components."""
    return PluginInfo(
        id=CORE_PLUGIN_ID,
        distribution="asklepios",
        version=installed_version("asklepios"),
        location=str(Path(__file__).resolve().parent.parent),
        module=BUILTINS_MODULE,
        builtin=True,
    )


def build_index(
    *,
    builtins: bool = True,
    discover: bool = True,
    search_path: Iterable[str] | None = None,
    extra: Iterable[PluginInfo] = (),
    disabled: frozenset[str] = frozenset(),
    strict: bool = False,
) -> dict[str, PluginInfo]:
    """Return plugin id -> :class:`PluginInfo` for what is installed, importing no plugin.

    Args:
        builtins: include plugin ``core``.
        discover: read the ``asklepios.plugins`` entry-point group.
        search_path: directories to discover distributions in (default: ``sys.path``).
        extra: in-memory plugins to include as they are.
        disabled: ids to mark ``disabled``.
        strict: raise :class:`DuplicatePluginError` on an id two distributions declare.
    """
    index: dict[str, PluginInfo] = {}
    if builtins:
        index[CORE_PLUGIN_ID] = core_info()
    if discover:
        path = None if search_path is None else [str(p) for p in search_path]
        for dist, ep in _entry_points(path):
            _add(index, _info_from_entry_point(dist, ep), strict)
    for info in extra:
        index[info.id] = info
    versions = {name: installed_version(name) for name in ("asklepios", "asklepios-sdk")}
    for info in index.values():
        if info.status != PluginStatus.NOT_LOADED:
            continue
        if info.id in disabled:
            info.mark(
                PluginStatus.DISABLED,
                "disabled by --disable or " + DISABLE_ENV,
                f"remove '{info.id}' from --disable / {DISABLE_ENV}",
            )
            continue
        for spec, name in ((info.core_range, "asklepios"), (info.sdk_range, "asklepios-sdk")):
            mismatch = _range_problem(info, spec, name, versions[name])
            if mismatch:
                info.mark(PluginStatus.INCOMPATIBLE, *mismatch)
                break
    return index
