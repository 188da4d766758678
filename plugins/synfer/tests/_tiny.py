"""Tiny fixtures the synfer tests build: a diffusers folder, FEText digits, classifiers, a set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk.synthesis import item_path
from PIL import Image

CLASSIFIER = {"component": "core.mlp", "params": {"hidden": [16]}, "input_size": 16}
"""A tiny classifier reference (needs 'weights' and 'num_classes' added)."""


def save_classifier(path: Path, num_classes: int = 8, seed: int = 0, hidden: int = 16) -> Path:
    """Save a randomly initialised core.mlp on 3 × 16 × 16 inputs; return the file."""
    from asklepios_sdk import BuildContext, DataFacts
    from asklepios_sdk.testing import host_components

    torch.manual_seed(seed)
    facts = DataFacts(num_classes=num_classes, in_channels=3, image_size=(16, 16))
    ctx = BuildContext(data=facts, components=host_components)
    model = host_components("backbone", "core.mlp", {"hidden": [hidden]}, ctx, "test")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return path


def classifier_ref(weights: Path, num_classes: int = 8, **extra: Any) -> dict[str, Any]:
    """Return the params of a ClassifierRef to the tiny classifier in ``weights``."""
    return {**CLASSIFIER, "weights": str(weights), "num_classes": num_classes, **extra}


def write_generated(folder: Path, count: int = 8, classes: int = 4, guidance: Any = None) -> Path:
    """Write a complete generated folder by hand (what a generation stage writes)."""
    rng = np.random.default_rng(0)
    records = []
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for index in range(count):
        label = index % classes
        pixels = np.clip(rng.normal(40 + 50 * label, 10, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / item_path(index))
        records.append(
            {
                "index": index,
                "path": item_path(index),
                "seed": index,
                "label": label,
                "caption": "x",
            }
        )
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifest = {"complete": True, "items": count, "generator": {"guidance_classifier": guidance}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder
