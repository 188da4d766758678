"""What tracker plugins share: one session per run on rank 0, failures as warnings, flat params.

A tracker (TensorBoard, MLflow) takes part in a run through lifecycle hooks, never by being named
in the config. It keeps one :class:`TrackerSession` per run directory in a :class:`Sessions`
holder; every call to the tracker's library goes through :meth:`TrackerSession.call`, so a
tracker failure (an unwritable folder, a server that is down) becomes a :class:`TrackerWarning`,
stops that tracker for the rest of the run (a dead server is not retried every epoch) and is
returned by the plugin's ``record_metadata`` hook into ``record.json``. Training goes on; the
core's ``metrics.jsonl`` and ``metrics.csv`` hold every metric without any tracker.

Importing this module imports neither torch nor any tracker library.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from asklepios_sdk.errors import AsklepiosWarning

__all__ = ["Sessions", "TrackerSession", "TrackerWarning", "flatten", "scalar_metrics"]


class TrackerWarning(AsklepiosWarning):
    """A tracker failed; the run goes on without it and its record says why."""


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Return nested mappings and lists as one level of dotted keys (``evaluators.0.type``).

    Empty mappings and lists are kept as ``{}``/``[]`` values, so no key disappears.
    """
    out: dict[str, Any] = {}
    if isinstance(data, Mapping) and data:
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(data, list | tuple) and data:
        for index, value in enumerate(data):
            out.update(flatten(value, f"{prefix}.{index}" if prefix else str(index)))
    elif prefix:
        out[prefix] = data
    return out


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Return the finite numeric values of ``metrics`` as floats (matrices, NaN, bools left out)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


class TrackerSession:
    """One tracker's session of one run (rank 0): guarded calls, warnings, a record entry.

    Subclasses set :attr:`plugin_id` and :attr:`version`, open their writer or client in a method
    run through :meth:`call`, and add what the record should say in :meth:`describe`.

    Args:
        run_dir: the run directory (``run.output_dir``).
    """

    plugin_id: ClassVar[str] = "tracker"
    version: ClassVar[str] = "0+unknown"

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.warnings: list[str] = []
        self.active = True

    def call(self, what: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``action(*args, **kwargs)``; on failure warn, remember why and stop the session.

        Returns the action's result, or ``None`` when it failed or the session has stopped.
        """
        if not self.active:
            return None
        try:
            return action(*args, **kwargs)
        except Exception as err:  # a tracker must never stop training
            self.fail(what, err)
            return None

    def fail(self, what: str, err: BaseException) -> None:
        """Record a failure as a :class:`TrackerWarning` and stop logging for this run."""
        message = (
            f"{self.plugin_id} tracking stopped: {what} failed ({type(err).__name__}: {err}); "
            "training goes on and metrics.jsonl/metrics.csv keep every metric. Fix the "
            f"tracking.{self.plugin_id} settings, or switch the tracker off with "
            f"--disable {self.plugin_id}"
        )
        self.warnings.append(message)
        self.active = False
        self.close_quietly()
        warnings.warn(message, TrackerWarning, stacklevel=3)

    def close_quietly(self) -> None:
        """Release what the session holds after a failure (never raises); default: nothing."""

    def describe(self) -> dict[str, Any]:
        """Return what the run record should say about this session (where it logged)."""
        return {}

    def metadata(self) -> dict[str, Any]:
        """Return the ``record_metadata`` entry: version, :meth:`describe` and any warnings."""
        entry: dict[str, Any] = {"version": self.version, **self.describe()}
        entry["warnings"] = list(self.warnings)
        return entry


S = TypeVar("S", bound=TrackerSession)


class Sessions(Generic[S]):
    """A plugin's sessions by run directory; finished ones keep their record entry."""

    def __init__(self) -> None:
        self._open: dict[str, S] = {}
        self._records: dict[str, dict[str, Any]] = {}

    def start(self, run_dir: str, session: S) -> S:
        """Remember ``session`` as the open session of ``run_dir`` and return it."""
        self._open[str(run_dir)] = session
        self._records.pop(str(run_dir), None)
        return session

    def get(self, run_dir: str) -> S | None:
        """Return the open, still active session of ``run_dir``, or None."""
        session = self._open.get(str(run_dir))
        return session if session is not None and session.active else None

    def finish(self, run_dir: str) -> S | None:
        """Close the books of ``run_dir``'s session: keep its record entry, forget the session."""
        session = self._open.pop(str(run_dir), None)
        if session is not None:
            self._records[str(run_dir)] = session.metadata()
        return session

    def metadata(self, run_dir: str) -> dict[str, Any] | None:
        """Return the record entry of ``run_dir``'s session (open or finished), or None."""
        session = self._open.get(str(run_dir))
        if session is not None:
            return session.metadata()
        return self._records.get(str(run_dir))
