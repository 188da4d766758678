"""Private helpers of the built-in datasets: in-memory splits, image loading, stratified splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import ComponentError, DataFacts

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class TensorSplit(torch.utils.data.Dataset):
    """A split held in memory: ``images[i]`` and ``labels[i]`` plus optional extra columns.

    ``uint8`` images are scaled to float [0, 1] when a sample is read.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self.images = images
        self.labels = labels
        self.extras = dict(extras or {})

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.images[index]
        if image.dtype == torch.uint8:  # stored compactly, scaled to [0, 1] per sample
            image = image.float().div_(255)
        sample: dict[str, Any] = {"image": image, "label": self.labels[index]}
        if self.extras:
            sample["meta"] = {key: values[index] for key, values in self.extras.items()}
        return sample


class FileSplit(torch.utils.data.Dataset):
    """A split of image files decoded on access (in DataLoader workers)."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: np.ndarray,
        mode: str,
        image_size: tuple[int, int] | None,
        extras: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.labels = labels
        self.mode = mode
        self.image_size = image_size
        self.extras = dict(extras or {})

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample: dict[str, Any] = {
            "image": load_image(self.paths[index], self.mode, self.image_size),
            "label": torch.as_tensor(self.labels[index]),
        }
        if self.extras:
            sample["meta"] = {key: values[index] for key, values in self.extras.items()}
        return sample


def load_image(path: str, mode: str, size: tuple[int, int] | None) -> torch.Tensor:
    """Read an image file as a float ``C x H x W`` tensor in [0, 1], resized to ``size`` if set."""
    from PIL import Image
    from torchvision.transforms.v2 import functional as TF

    try:
        with Image.open(path) as handle:
            image = handle.convert(mode)
    except (OSError, ValueError) as err:
        raise ComponentError(f"cannot read image {path}: {err}") from err
    tensor = TF.to_dtype(TF.pil_to_tensor(image), torch.float32, scale=True)
    if size is not None:
        tensor = TF.resize(tensor, list(size), antialias=True)
    return tensor


def stratified_split(labels: np.ndarray, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Split indices into parts of the given fractions (the rest is the first part), per class."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        sizes = [round(len(idx) * f) for f in fractions]
        for part, size in enumerate(sizes, start=1):
            parts[part].append(idx[start : start + size])
            start += size
        parts[0].append(idx[start:])
    return [np.sort(np.concatenate(p)) if p else np.empty(0, dtype=np.int64) for p in parts]


def classification_facts(
    labels: np.ndarray,
    num_classes: int,
    class_names: Sequence[str] | None,
    in_channels: int | None,
    image_size: tuple[int, int] | None,
    **extra: Any,
) -> DataFacts:
    """Return the facts of a single-label classification training split."""
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes)
    return DataFacts(
        task="classification",
        num_samples=len(labels),
        num_classes=num_classes,
        class_counts=tuple(int(c) for c in counts),
        class_names=tuple(class_names) if class_names is not None else None,
        labels=tuple(int(v) for v in labels),
        in_channels=in_channels,
        image_size=image_size,
        **extra,
    )


def list_class_folder(root: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """List ``root/<class>/<image>`` files; return paths, labels and the sorted class names."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ComponentError(
            f"core.image_folder: no class sub-folders in {root}; expected {root}/<class>/<image>"
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    if not paths:
        raise ComponentError(
            f"core.image_folder: no images ({', '.join(IMAGE_SUFFIXES)}) under {root}"
        )
    return paths, np.asarray(labels, dtype=np.int64), classes
