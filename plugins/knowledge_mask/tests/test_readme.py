"""The README's component table is generated from the registrations and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_component_table_is_exactly_the_registrations() -> None:
    text = README.read_text()
    rows = component_table_rows("asklepios_knowledge_mask.hooks", "knowledge_mask")
    assert rows, "the plugin registers no components"
    table = "\n".join([*COMPONENT_TABLE_HEADER, *rows]) + "\n"
    assert table in text, "README component table is stale; regenerate it:\n" + table
    after = text.split(table, 1)[1]
    assert not after.startswith("|"), "README component table has rows for no component"
