"""The README's component table is generated from the registry and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_component():
    text = README.read_text()
    rows = component_table_rows("asklepios_longtail.hooks", "longtail")
    assert rows, "the plugin registers no components"
    missing = [row for row in rows if row not in text]
    assert not missing, "README component table is stale; regenerate it:\n" + "\n".join(missing)


def test_readme_table_has_the_sdk_header_and_nothing_else():
    lines = README.read_text().splitlines()
    header = list(COMPONENT_TABLE_HEADER)
    starts = [i for i in range(len(lines)) if lines[i : i + 2] == header]
    assert len(starts) == 1, f"README needs one component table headed {header}"
    body = []
    for line in lines[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        body.append(line)
    rows = component_table_rows("asklepios_longtail.hooks", "longtail")
    assert body == rows, "README component table differs from the registry; regenerate it"
