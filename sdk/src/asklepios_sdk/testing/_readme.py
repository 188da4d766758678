"""The component table a plugin's README carries, generated from its registrations."""

from __future__ import annotations

from asklepios_sdk.testing._collect import collect

__all__ = ["COMPONENT_TABLE_HEADER", "component_table_rows"]

COMPONENT_TABLE_HEADER = ("| component | kind | what it does |", "|---|---|---|")
"""The header of the table whose rows :func:`component_table_rows` returns."""


def _cell(text: str) -> str:
    """Escape a table cell: a ``|`` would end it."""
    return text.replace("|", "\\|")


def component_table_rows(hooks: str | object, plugin_id: str | None = None) -> list[str]:
    """Return one markdown row ``| `id` | kind | one-line doc |`` per registered component.

    A plugin's test asserts that every row appears in its README (under
    :data:`COMPONENT_TABLE_HEADER`), so the table cannot go stale; printing the rows gives the
    table to paste.
    """
    collected = collect(hooks, plugin_id)
    return [f"| `{e.component_id}` | {e.kind} | {_cell(e.doc or '')} |" for e in collected.entries]
