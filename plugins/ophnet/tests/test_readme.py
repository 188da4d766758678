"""The README's component table is generated from the registry and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_component():
    text = README.read_text()
    rows = component_table_rows("asklepios_ophnet.hooks", "ophnet")
    assert rows, "the plugin registers no components"
    missing = [row for row in rows if row not in text]
    assert not missing, "README component table is stale; regenerate it:\n" + "\n".join(missing)
