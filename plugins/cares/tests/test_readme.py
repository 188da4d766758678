"""The README's component table is generated from the registrations and must stay in sync."""

from __future__ import annotations

from pathlib import Path

from asklepios_sdk.testing import COMPONENT_TABLE_HEADER, component_table_rows

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_component() -> None:
    text = README.read_text()
    rows = component_table_rows("asklepios_cares.hooks", "cares")
    assert len(rows) == 12
    table = "\n".join((*COMPONENT_TABLE_HEADER, *rows))
    assert table in text, "README component table is stale; regenerate it:\n" + table


def test_readme_flags_the_unverified_definitions_and_the_legacy_switches() -> None:
    text = README.read_text()
    for needle in (
        "UNVERIFIED",
        "uncertainty_acc",
        "over_confident",
        "/aed",
        "parser: legacy",
        "faithful_uint8_wrap",
        "legacy_quirks",
        "legacy: true",
        "@article",
    ):
        assert needle in text, needle
