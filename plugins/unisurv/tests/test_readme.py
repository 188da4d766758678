"""The README's component table is generated from the registry and must stay in sync."""

from __future__ import annotations

import inspect
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
KINDS = {
    "register_adapters": "adapter",
    "register_augmentations": "augmentation",
    "register_backbones": "backbone",
    "register_datasets": "dataset",
    "register_evaluators": "evaluator",
    "register_losses": "loss",
    "register_samplers": "sampler",
    "register_trainers": "trainer",
}


def component_rows() -> list[str]:
    """Return one markdown row per registered component: id, kind, one-line doc."""
    from asklepios_unisurv import hooks

    rows = []
    for hook_name in hooks.__all__:
        kind = KINDS[hook_name]

        def register(name, factory, params=None, doc=None, kind=kind):
            summary = doc or inspect.getdoc(factory).splitlines()[0]
            rows.append(f"| `unisurv.{name}` | {kind} | {summary} |")

        getattr(hooks, hook_name)(register)
    return rows


def test_readme_lists_every_component():
    text = README.read_text()
    missing = [row for row in component_rows() if row not in text]
    assert not missing, "README component table is stale; regenerate it:\n" + "\n".join(missing)
