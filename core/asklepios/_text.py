"""Private text helpers for messages: "did you mean", compact lists, wildcard matching."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable

__all__ = ["did_you_mean", "matches", "short_list", "suggest"]


def suggest(word: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Return up to ``n`` candidates close to ``word``, best first (also matching bare names)."""
    pool = sorted(set(candidates))
    found = difflib.get_close_matches(word, pool, n=n, cutoff=cutoff)
    bare = word.rpartition(".")[2]
    by_name: dict[str, list[str]] = {}
    for cand in pool:
        by_name.setdefault(cand.rpartition(".")[2], []).append(cand)
    for name in difflib.get_close_matches(bare, list(by_name), n=n, cutoff=cutoff):
        for cand in by_name[name]:
            if cand not in found:
                found.append(cand)
    return found[:n]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """Return ``"Did you mean 'a' or 'b'?"`` for close candidates, or ``None``."""
    close = suggest(word, candidates)
    if not close:
        return None
    return "Did you mean " + " or ".join(repr(c) for c in close) + "?"


def short_list(items: Iterable[str], limit: int = 12) -> str:
    """Join sorted ``items`` with commas, eliding the tail past ``limit``."""
    values = sorted(set(items))
    if not values:
        return "(none)"
    if len(values) <= limit:
        return ", ".join(values)
    return ", ".join(values[:limit]) + f", ... ({len(values) - limit} more)"


def matches(value: str, pattern: str | None) -> bool:
    """Return whether ``value`` matches a shell-style ``pattern`` (a plain word is a substring)."""
    if not pattern:
        return True
    if not any(ch in pattern for ch in "*?["):
        return pattern.lower() in value.lower()
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())
