"""The component table a plugin's README carries, generated from its registrations."""

from __future__ import annotations

from asklepios_sdk.testing._collect import collect

__all__ = ["component_table_rows"]


def component_table_rows(hooks: str | object, plugin_id: str | None = None) -> list[str]:
    """Return one markdown row ``| `id` | kind | one-line doc |`` per registered component.

    A plugin's test asserts that every row appears in its README, so the table cannot go stale;
    printing the rows gives the table to paste.
    """
    collected = collect(hooks, plugin_id)
    return [f"| `{r.component_id}` | {r.kind} | {r.doc} |" for r in collected.registrations]
