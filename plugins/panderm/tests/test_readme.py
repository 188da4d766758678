"""The README's component table is generated from the registrations and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_component() -> None:
    text = README.read_text()
    rows = component_table_rows("asklepios_panderm.hooks", "panderm")
    assert len(rows) == 20
    table = "\n".join((*COMPONENT_TABLE_HEADER, *rows))
    assert table in text, "README component table is stale; regenerate it:\n" + table


def test_readme_has_no_placeholder_left() -> None:
    assert "BENCH_TABLE" not in README.read_text()
