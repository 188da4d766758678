"""The README's component table is the one the registrations give."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_table_lists_every_component() -> None:
    rows = component_table_rows("asklepios_polyloss.hooks", "polyloss")
    table = "\n".join([*COMPONENT_TABLE_HEADER, *rows])
    text = README.read_text(encoding="utf-8")
    assert table in text, "the README's component table is stale; paste this one:\n" + table
