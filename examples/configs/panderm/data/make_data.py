"""Write the tiny local data sets the panderm example configs run on (committed; rerun to rebuild).

- ``digits/``: scikit-learn's bundled 8x8 digits upscaled to 32x32 RGB PNGs and ``digits.csv`` in
  PanDerm's format (``image,split,label``): 10 classes, 10 train / 3 val / 5 test per class.
- ``lesions/``: 64x64 tiles of scikit-image's bundled ``retina`` photograph with a synthetic
  brown "lesion" (a noisy ellipse, sometimes none) and its mask, and ``lesions.csv``
  (``image,mask,split``), laid out like ISIC 2018 Task 1 (``<id>.jpg``, ``<id>_segmentation.png``).

Neither is dermatology data: they exercise the pipelines end to end on this machine. Point the
configs at a real PanDerm CSV (README of the plugin) for real results.

Run: ``python examples/configs/panderm/data/make_data.py``
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def _write_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def make_digits(per_class: tuple[int, int, int] = (10, 3, 5)) -> None:
    """Write ``digits/`` and ``digits.csv``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    folder = HERE / "digits"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for label in range(10):
        chosen = rng.permutation(np.flatnonzero(digits.target == label))[: sum(per_class)]
        splits = ["train"] * per_class[0] + ["val"] * per_class[1] + ["test"] * per_class[2]
        for index, split in zip(chosen, splits, strict=True):
            pixels = (digits.images[index] / 16.0 * 255).astype(np.uint8)
            image = Image.fromarray(pixels).resize((32, 32), Image.Resampling.BILINEAR)
            name = f"digit_{index:04d}.png"
            image.convert("RGB").save(folder / name, optimize=True)
            rows.append({"image": f"digits/{name}", "split": split, "label": label})
    order = rng.permutation(len(rows))
    _write_csv(HERE / "digits.csv", [rows[i] for i in order], ["image", "split", "label"])


def make_lesions(counts: tuple[int, int, int] = (12, 6, 6), size: int = 64) -> None:
    """Write ``lesions/`` (images and masks) and ``lesions.csv``."""
    from skimage.data import retina

    photo = np.asarray(Image.fromarray(retina()).resize((512, 512), Image.Resampling.BILINEAR))
    folder = HERE / "lesions"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    splits = ["train"] * counts[0] + ["val"] * counts[1] + ["test"] * counts[2]
    yy, xx = np.mgrid[0:size, 0:size]
    for i, split in enumerate(splits):
        top, left = rng.integers(96, 512 - 96 - size, size=2)
        tile = photo[top : top + size, left : left + size].astype(np.float64)
        mask = np.zeros((size, size), dtype=bool)
        if i % 6 != 5:  # every sixth tile has no lesion (empty ground truth)
            cy, cx = rng.uniform(0.3, 0.7, size=2) * size
            ry, rx = rng.uniform(0.12, 0.28, size=2) * size
            angle = rng.uniform(0, np.pi)
            dy, dx = yy - cy, xx - cx
            u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
            v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
            wobble = 1 + 0.15 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 6))
            mask = u**2 + v**2 <= wobble**2
            lesion = np.array([95.0, 60.0, 40.0]) + rng.normal(0, 12, (size, size, 3))
            tile[mask] = 0.25 * tile[mask] + 0.75 * lesion[mask]
        name = f"tile_{i:03d}"
        Image.fromarray(np.clip(tile, 0, 255).astype(np.uint8)).save(
            folder / f"{name}.jpg", quality=90
        )
        Image.fromarray(mask.astype(np.uint8) * 255).save(
            folder / f"{name}_segmentation.png", optimize=True
        )
        rows.append(
            {
                "image": f"lesions/{name}.jpg",
                "mask": f"lesions/{name}_segmentation.png",
                "split": split,
            }
        )
    _write_csv(HERE / "lesions.csv", rows, ["image", "mask", "split"])


if __name__ == "__main__":
    make_digits()
    make_lesions()
