"""Dataset wrapper that serves the "-C" version of a dataset's evaluation splits.

Every sample of a wrapped split appears once per (corruption, severity), corrupted with a seed
derived from (seed, sample index, corruption, severity), so every model and every run sees the
same corrupted images (ISIC2019-C / Dermnet-C style, reconstructed from the ImageNet-C protocol).
Blocks can be cached on disk, keyed by the parameters and a fingerprint of the wrapped split, and
exported as ImageNet-C-style folders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DatasetWrapper
from asklepios_sdk.io import write_atomic
from torch import Tensor

from asklepios_diffusion_tta.corruptions import (
    DETERMINISTIC,
    corrupt,
    resolve_corruptions,
    sample_seed,
)
from asklepios_diffusion_tta.params import CorruptedDatasetParams
from asklepios_diffusion_tta.robustness import ALL_CORRUPTIONS

__all__ = [
    "CorruptedDataset",
    "CorruptedDatasetParams",
    "CorruptedSplit",
    "export_image_folders",
]


def _to_unit(image: Tensor, value_range: tuple[float, float]) -> Tensor:
    if image.dtype == torch.uint8:
        return image.float() / 255
    lo, hi = value_range
    return (image.float() - lo) / (hi - lo)


def _from_unit(x: Tensor, like: Tensor, value_range: tuple[float, float]) -> Tensor:
    if like.dtype == torch.uint8:
        return torch.round(x * 255).to(torch.uint8)
    lo, hi = value_range
    return (x * (hi - lo) + lo).to(like.dtype)


class CorruptedSplit(torch.utils.data.Dataset):
    """One split served under every chosen (corruption, severity), corruption-major."""

    def __init__(
        self,
        inner: torch.utils.data.Dataset,
        params: CorruptedDatasetParams,
        names: Sequence[str],
        cache: Path | None,
    ) -> None:
        self.inner = inner
        self.params = params
        self.names = tuple(names)
        self.n = len(inner)  # type: ignore[arg-type]
        self.cells = [(name, s) for name in self.names for s in params.severities]
        if params.include_clean:
            self.cells.insert(0, ("clean", 0))
        self.cache = cache
        self._blocks: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return self.n * len(self.cells)

    def _corrupt_one(self, image: Tensor, index: int, name: str, severity: int) -> Tensor:
        gen = torch.Generator().manual_seed(sample_seed(self.params.seed, index, name, severity))
        x = _to_unit(image, self.params.value_range)
        out = corrupt(
            x[None], name, severity, gen, frost_texture_dir=self.params.frost_texture_dir
        )[0]
        return _from_unit(out, image, self.params.value_range)

    def _corrupt_batch(self, images: Tensor, name: str, severity: int) -> Tensor:
        x = _to_unit(images, self.params.value_range)
        out = corrupt(x, name, severity, torch.Generator().manual_seed(0))
        return _from_unit(out, images, self.params.value_range)

    def _block(self, cell: int, cache: Path) -> Tensor:
        if cell not in self._blocks:
            path = cache / f"{self.cells[cell][0]}_s{self.cells[cell][1]}.pt"
            if path.is_file():
                self._blocks[cell] = torch.load(path, weights_only=True)
            else:
                name, severity = self.cells[cell]
                if name in DETERMINISTIC:
                    clean = torch.stack([self.inner[i]["image"] for i in range(self.n)])
                    block = torch.cat(
                        [self._corrupt_batch(chunk, name, severity) for chunk in clean.split(256)]
                    )
                else:
                    images = [
                        self._corrupt_one(self.inner[i]["image"], i, name, severity)
                        for i in range(self.n)
                    ]
                    block = torch.stack(images)
                write_atomic(path, write=lambda tmp: torch.save(block, tmp))
                self._blocks[cell] = block
        return self._blocks[cell]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} corrupted samples")
        cell, inner_index = divmod(index, self.n)
        name, severity = self.cells[cell]
        sample = dict(self.inner[inner_index])
        if severity > 0:
            if self.cache is not None:
                sample["image"] = self._block(cell, self.cache)[inner_index]
            else:
                sample["image"] = self._corrupt_one(sample["image"], inner_index, name, severity)
            sample["corruption"] = ALL_CORRUPTIONS.index(name)
        else:
            sample["corruption"] = len(ALL_CORRUPTIONS)
        sample["severity"] = severity
        sample["source_index"] = inner_index
        return sample


class CorruptedDataset(DatasetWrapper):
    """Serve the -C version (chosen corruptions × severities) of a dataset's test split.

    Only the splits named in ``splits`` are corrupted; the others pass through unchanged.
    """

    def __init__(self, params: CorruptedDatasetParams, ctx: BuildContext) -> None:
        self.params = params
        self.names = resolve_corruptions(params.corruptions)
        if "frost" in self.names and params.frost_texture_dir is None:
            raise ComponentError(
                "diffusion_tta.corrupted: 'frost' needs frost textures; set frost_texture_dir to a "
                "folder of frost photographs, or choose corruptions without frost, e.g. "
                "--set data.wrappers.0.corruptions=[gaussian_noise,shot_noise]"
            )

    def _fingerprint(self, name: str, split: torch.utils.data.Dataset) -> str:
        digest = hashlib.sha256()
        labels = self.inner.labels(name)
        size = len(split)  # type: ignore[arg-type]
        digest.update(f"{type(self.inner).__name__}:{name}:{size}".encode())
        if labels is not None:
            digest.update(np.asarray(labels, dtype=np.int64).tobytes())
        for i in sorted({0, size // 2, size - 1}):
            digest.update(np.ascontiguousarray(split[i]["image"].numpy()).tobytes())
        settings = self.params.model_dump(exclude={"cache_dir", "splits"})
        digest.update(json.dumps(settings, sort_keys=True).encode())
        return digest.hexdigest()[:16]

    def split(self, name: str) -> torch.utils.data.Dataset:
        inner = self.inner.split(name)
        if name not in self.params.splits:
            return inner
        if len(inner) == 0:  # type: ignore[arg-type]
            raise ComponentError(f"diffusion_tta.corrupted: split {name!r} is empty")
        cache = None
        if self.params.cache_dir is not None:
            cache = Path(self.params.cache_dir) / f"{name}-{self._fingerprint(name, inner)}"
        return CorruptedSplit(inner, self.params, self.names, cache)

    def labels(self, name: str) -> np.ndarray | None:
        labels = self.inner.labels(name)
        if labels is None or name not in self.params.splits:
            return labels
        cells = len(self.names) * len(self.params.severities) + int(self.params.include_clean)
        return np.tile(np.asarray(labels), cells)


def export_image_folders(split: CorruptedSplit, out_dir: str | Path) -> Path:
    """Write a corrupted split as ImageNet-C folders: ``<corruption>/<severity>/<label>/<i>.png``.

    Float images are mapped from the wrapper's ``value_range`` to 8 bits; files are written to a
    temporary name and renamed, so an interrupted export leaves no partial image.
    """
    from PIL import Image

    root = Path(out_dir)
    for index in range(len(split)):
        sample = split[index]
        cell, inner_index = divmod(index, split.n)
        name, severity = split.cells[cell]
        image = sample["image"]
        unit = _to_unit(image, split.params.value_range).clamp(0, 1)
        array = torch.round(unit * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        label = int(sample.get("label", 0))
        path = root / name / str(severity) / str(label) / f"{inner_index:06d}.png"
        picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        write_atomic(path, write=picture.save)
    return root
