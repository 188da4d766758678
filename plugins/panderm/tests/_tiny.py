"""Tiny PanDerm models, checkpoints and data that the tests write (no weights are downloaded)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, DataFacts
from PIL import Image

TINY = {"embed_dim": 64, "depth": 2, "num_heads": 4, "img_size": 32}
"""A PanDerm-style ViT small enough for CPU tests: D=64, 2 blocks, 4 heads, 32 px (2x2 grid)."""


def tiny_ctx(num_classes: int = 3, **facts: Any) -> BuildContext:
    """Return a build context of a 3-class image task."""
    return BuildContext(data=DataFacts(num_classes=num_classes, in_channels=3, **facts))


def perturbed_state(encoder: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Return ``encoder``'s state with every tensor but pos_embed randomly perturbed."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in encoder.state_dict().items():
        noise = torch.randn(value.shape, generator=gen) * (0.0 if key == "pos_embed" else 0.2)
        state[key] = value + noise
    return state


def panderm_release(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``state`` in PanDerm's released layout: ``encoder.``-prefixed, with junk keys."""
    release = {"encoder." + k: v.clone() for k, v in state.items()}
    release["decoder.head.weight"] = torch.randn(8, 4)
    release["teacher.x"] = torch.randn(3)
    release["mask_token"] = torch.randn(1, 1, 64)
    return release


def write_digits_csv(folder: Path, per_split: tuple[int, int, int] = (30, 10, 20)) -> Path:
    """Write scikit-learn digits 0-2 as 32 px RGB PNGs and a PanDerm CSV; return the CSV."""
    from sklearn.datasets import load_digits

    digits = load_digits(n_class=3)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    order = np.random.default_rng(0).permutation(len(digits.target))
    splits = ["train"] * per_split[0] + ["val"] * per_split[1] + ["test"] * per_split[2]
    for i, split in zip(order, splits, strict=False):
        pixels = (digits.images[i] / 16.0 * 255).astype(np.uint8)
        image = Image.fromarray(pixels).resize((32, 32), Image.Resampling.BILINEAR).convert("RGB")
        name = f"d{i:04d}.png"
        image.save(folder / name)
        rows.append({"image": name, "split": split, "label": int(digits.target[i])})
    path = folder / "digits.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "split", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path
