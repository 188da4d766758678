"""Errors the host raises on purpose; all derive from :class:`asklepios_sdk.AsklepiosError`.

The CLI prints these as one message without a traceback (``--debug`` shows it). Each message says
what failed, where (config file, key path, component id, plugin id and version), why, and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from asklepios_sdk import AsklepiosError, ComponentError

__all__ = [
    "AmbiguousComponentError",
    "BuildError",
    "ConfigError",
    "ConfigIssue",
    "DuplicateComponentError",
    "DuplicatePluginError",
    "IncompatiblePluginError",
    "ParamsError",
    "PluginDisabledError",
    "PluginError",
    "PluginLoadError",
    "RegistryError",
    "UnknownComponentError",
    "UnknownPluginError",
]


class PluginError(AsklepiosError):
    """A plugin could not be found, loaded or used."""


class UnknownPluginError(PluginError):
    """No installed plugin has the requested id."""


class PluginLoadError(PluginError):
    """A plugin failed to import, to register with pluggy, or in a registration hook."""


class IncompatiblePluginError(PluginLoadError):
    """A plugin declares a core (or SDK) version range that the installed version is outside."""


class DuplicatePluginError(PluginLoadError):
    """Two distributions declare the same plugin id."""


class PluginDisabledError(PluginLoadError):
    """The plugin was disabled by ``--disable`` or ``ASKLEPIOS_DISABLE_PLUGINS``."""


class RegistryError(AsklepiosError):
    """A component registration or lookup is invalid."""


class DuplicateComponentError(RegistryError):
    """A component name was registered twice; the message names both factories."""


class UnknownComponentError(RegistryError, LookupError):
    """No component of the kind has the requested id."""


class AmbiguousComponentError(RegistryError, LookupError):
    """A bare component name matches components of several plugins."""


class ParamsError(ComponentError):
    """A component's params do not validate against its params model."""


class BuildError(ComponentError):
    """A component factory raised while constructing the component."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem of a config: where it is, what is wrong, and what to do about it.

    Attributes:
        file: the config file the offending key comes from (or ``--set ...`` for an override).
        path: dotted key path inside the config, e.g. ``data.sampler.alpha`` or ``evaluators[1]``.
        message: what is wrong.
        component: the component id involved, when there is one.
        plugin: ``"<plugin-id> <version>"`` providing the component, when known.
        suggestion: what to type instead, when there is something to suggest.
        line: 1-based line of the key in ``file``, when known (YAML files).
    """

    file: str
    path: str
    message: str
    component: str | None = None
    plugin: str | None = None
    suggestion: str | None = None
    line: int | None = None

    def format(self) -> str:
        """Return the issue as one or two lines for terminals and logs."""
        at = f"{self.file}:{self.line}" if self.line else self.file
        where = f"{at}: {self.path or '<root>'}"
        if self.component:
            origin = f" ({self.plugin})" if self.plugin else ""
            where += f" [{self.component}{origin}]"
        text = f"{where}: {self.message}"
        if self.suggestion:
            text += f"\n    hint: {self.suggestion}"
        return text


class ConfigError(AsklepiosError):
    """A config is unreadable or invalid; ``issues`` lists every problem found, not the first."""

    def __init__(self, issues: Sequence[ConfigIssue], source: str | None = None) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(issues)
        self.source = source
        count = len(self.issues)
        head = f"config {source} is invalid" if source else "config is invalid"
        head += f" ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {issue.format()}" for issue in self.issues)]))
