"""asklepios_sdk.tracking: sessions per run, guarded calls, flat params, scalar metrics."""

from __future__ import annotations

import math

import pytest
from asklepios_sdk.tracking import (
    Sessions,
    TrackerSession,
    TrackerWarning,
    flatten,
    scalar_metrics,
)


class _Session(TrackerSession):
    plugin_id = "demo"
    version = "1.0"

    def __init__(self, run_dir: str) -> None:
        super().__init__(run_dir)
        self.closed = False

    def close_quietly(self) -> None:
        self.closed = True

    def describe(self) -> dict:
        return {"where": str(self.run_dir)}


def test_flatten_keeps_every_leaf_with_dotted_keys():
    nested = {"a": {"b": 1, "c": [{"d": 2}, 3]}, "e": {}, "f": [], "g": None}
    assert flatten(nested) == {"a.b": 1, "a.c.0.d": 2, "a.c.1": 3, "e": {}, "f": [], "g": None}


def test_scalar_metrics_keeps_finite_numbers_only():
    metrics = {"a": 1, "b": 0.5, "c": math.nan, "d": math.inf, "e": True, "f": [[1]], "g": "x"}
    assert scalar_metrics(metrics) == {"a": 1.0, "b": 0.5}


def test_call_returns_the_result_and_a_failure_warns_once_and_stops(tmp_path):
    session = _Session(str(tmp_path))
    assert session.call("adding", lambda x, y: x + y, 1, y=2) == 3

    def boom() -> None:
        raise OSError("disk full")

    with pytest.warns(TrackerWarning, match=r"demo tracking stopped: writing failed \(OSError"):
        assert session.call("writing", boom) is None
    assert not session.active and session.closed
    assert session.call("adding", lambda: 1) is None  # stopped: nothing runs
    entry = session.metadata()
    assert entry["version"] == "1.0" and entry["where"] == str(tmp_path)
    assert len(entry["warnings"]) == 1 and "--disable demo" in entry["warnings"][0]


def test_sessions_keep_the_record_entry_after_finishing(tmp_path):
    sessions: Sessions[_Session] = Sessions()
    key = str(tmp_path)
    assert sessions.get(key) is None and sessions.metadata(key) is None
    session = sessions.start(key, _Session(key))
    assert sessions.get(key) is session
    assert sessions.finish(key) is session
    assert sessions.get(key) is None
    assert sessions.metadata(key) == {"version": "1.0", "where": key, "warnings": []}
    sessions.start(key, _Session(key))
    session.active = False
    assert sessions.get(key) is not session
