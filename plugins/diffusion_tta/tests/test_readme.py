"""The README's component table is generated from the registrations and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_component() -> None:
    text = README.read_text()
    assert "\n".join(COMPONENT_TABLE_HEADER) in text
    rows = component_table_rows("asklepios_diffusion_tta.hooks", "diffusion_tta")
    assert len(rows) == 9, rows
    missing = [row for row in rows if row not in text]
    assert not missing, "README component table is stale; regenerate it:\n" + "\n".join(missing)
