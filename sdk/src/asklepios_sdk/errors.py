"""Exception and warning roots shared by the core and every plugin."""

from __future__ import annotations

__all__ = [
    "AsklepiosDeprecationWarning",
    "AsklepiosError",
    "AsklepiosWarning",
    "ComponentError",
    "ConfigConflictError",
    "WeightsError",
]


class AsklepiosError(Exception):
    """Root of every error asklepios raises on purpose; the CLI prints these without a traceback."""


class AsklepiosWarning(UserWarning):
    """Root of every warning asklepios emits."""


class AsklepiosDeprecationWarning(AsklepiosWarning, DeprecationWarning):
    """A plugin uses a form of the SDK that goes away in the next minor release (message: fix)."""


class ComponentError(AsklepiosError):
    """A component was given inputs or params it cannot work with (message says which and why)."""


class WeightsError(AsklepiosError):
    """Weights could not be found, read or matched to a model; never followed by random init."""


class ConfigConflictError(ComponentError):
    """Two parts of a config contradict each other (not a data or weights problem).

    A component raises it at build when its params clash with another component's (an
    evaluator scoring with the model that guided a generation). ``asklepios validate --deep``
    reports it even for a stage whose data an earlier generation stage will make.
    """
