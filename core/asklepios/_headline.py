"""Which metrics a reader sees first: evaluators' headline keys and labelled matrices.

Shared by the terminal summary (:mod:`asklepios.reporting`) and the plots
(:mod:`asklepios._plots`), which sit beside each other and import only this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

__all__ = ["DEFAULT_HEADLINE", "MAX_ROWS", "headline", "is_matrix", "is_number", "stage_facts"]

MAX_ROWS = 12
"""Rows of a stage's summary table on the terminal; the rest is in summary.json/metrics.csv."""
DEFAULT_HEADLINE = 8
"""Headline keys of an evaluator that declares none: its first scalar keys, at most this many."""


def is_number(value: Any) -> bool:
    """Return whether ``value`` is a real number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_matrix(value: Any) -> bool:
    """Return whether ``value`` is a labelled matrix artifact (rows, columns, values)."""
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("rows"), list)
        and isinstance(value.get("columns"), list)
        and isinstance(value.get("values"), list)
        and len(value["values"]) == len(value["rows"])
    )


def stage_facts(evaluators: Iterable[Any], class_names: Sequence[str] | None) -> dict[str, Any]:
    """Return what the report of a stage needs beyond its metrics, for its ``summary.json``.

    ``headline``: each evaluator's declared headline patterns by evaluator name (in config
    order); ``class_names``: the dataset's class names (confusion-matrix labels), if it has them.
    """
    facts: dict[str, Any] = {
        "headline": {e.name: list(getattr(e, "headline_keys", ()) or ()) for e in evaluators}
    }
    if class_names:
        facts["class_names"] = [str(name) for name in class_names]
    return facts


def headline(
    metrics: Mapping[str, Any],
    patterns: Mapping[str, Sequence[str]] | None = None,
    limit: int = MAX_ROWS,
) -> list[str]:
    """Return the headline keys of ``metrics``: ``loss``, then each evaluator's, in order.

    Args:
        metrics: ``{"loss": ..., "<evaluator>/<key>": ...}``; only scalar values count.
        patterns: evaluator name -> its ``headline_keys`` (``fnmatch`` patterns over the key
            after ``<evaluator>/``). An evaluator without patterns contributes its first
            :data:`DEFAULT_HEADLINE` scalar keys.
        limit: at most this many keys.
    """
    patterns = patterns or {}
    scalar = [k for k, v in metrics.items() if is_number(v)]
    chosen = ["loss"] if "loss" in scalar else []
    groups: dict[str, list[str]] = {}
    for key in scalar:
        if "/" in key:
            groups.setdefault(key.split("/", 1)[0], []).append(key)
    for name in [*patterns, *(g for g in groups if g not in patterns)]:
        keys = groups.get(name, [])
        declared = patterns.get(name) or []
        if declared:
            picked = [k for p in declared for k in keys if fnmatchcase(k[len(name) + 1 :], p)]
        else:
            picked = keys[:DEFAULT_HEADLINE]
        chosen += [k for k in dict.fromkeys(picked) if k not in chosen]
    return chosen[:limit]
