"""The README's settings table is generated from the params model and must stay in sync."""

from __future__ import annotations

import json
from pathlib import Path

from asklepios_mlflow.params import MLflowParams

README = Path(__file__).resolve().parents[1] / "README.md"


def settings_rows() -> list[str]:
    """Return one table row per field: ``| `name` | `default` | description |``."""
    rows = []
    for name, field in MLflowParams.model_fields.items():
        default = json.dumps(field.get_default(call_default_factory=True))
        text = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | `{default}` | {text} |")
    return rows


def test_readme_lists_every_setting():
    text = README.read_text()
    missing = [row for row in settings_rows() if row not in text]
    assert not missing, "README settings table is stale; regenerate it:\n" + "\n".join(missing)
