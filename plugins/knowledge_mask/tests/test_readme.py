"""The README's component table lists exactly the registered components, with their kinds."""

from __future__ import annotations

import re
from pathlib import Path

from asklepios_knowledge_mask import hooks

README = Path(__file__).resolve().parents[1] / "README.md"
KINDS = {
    "register_augmentations": "augmentation",
    "register_backbones": "backbone",
    "register_losses": "loss",
    "register_trainers": "trainer",
    "register_adapters": "adapter",
    "register_evaluators": "evaluator",
    "register_datasets": "dataset",
}


def test_component_table_matches_registrations() -> None:
    registered: dict[str, str] = {}
    for hook, kind in KINDS.items():

        def register(
            name: str, factory: object, params: object = None, doc: object = None, _kind: str = kind
        ) -> None:
            registered[f"knowledge_mask.{name}"] = _kind

        getattr(hooks, hook)(register)
    rows = re.findall(r"^\| `(knowledge_mask\.\w+)` \| (\w+)", README.read_text(), re.MULTILINE)
    assert dict(rows) == registered
