"""The README's component table lists exactly the registered components, with their kinds."""

from __future__ import annotations

import re
from pathlib import Path

from asklepios_diffusion_tta import hooks

README = Path(__file__).resolve().parents[1] / "README.md"
KINDS = {
    "register_augmentations": "augmentation",
    "register_adapters": "adapter",
    "register_backbones": "backbone",
    "register_datasets": "dataset wrapper",
    "register_evaluators": "evaluator",
    "register_losses": "loss",
    "register_trainers": "trainer",
}


def test_component_table_matches_registrations() -> None:
    registered: dict[str, str] = {}
    for hook, kind in KINDS.items():
        getattr(hooks, hook)(
            lambda name, factory, params=None, doc=None, k=kind: registered.__setitem__(
                f"diffusion_tta.{name}", k
            )
        )
    rows = re.findall(
        r"^\| `(diffusion_tta\.\w+)` \| ([a-z ]+?)(?: \(.*?\))? \|",
        README.read_text(),
        flags=re.MULTILINE,
    )
    assert dict(rows) == registered
