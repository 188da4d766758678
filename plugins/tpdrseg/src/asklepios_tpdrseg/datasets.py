"""Datasets ``tpdrseg.fundus_lesions`` (IDRiD, DDR) and ``tpdrseg.skimage_fundus`` (demo).

Each item is one (image, lesion) pair: ``image`` ``(3, S, S)`` SAM-preprocessed (longest side
``S``, normalised, padded), ``mask`` ``(1, S, S)`` uint8 and ``lesion`` (an index into
``facts.extras["lesions"]``). The facts of the training split also list, per item, its image
(``extras["item_images"]``) and lesion (``extras["item_lesions"]``) for ``tpdrseg.lesion_sampler``.
The CLIP-branch input is derived from ``image`` inside ``tpdrseg.explicit_prior``, after the
joint augmentations, so it always shows what SAM sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset

from asklepios_tpdrseg.params import FundusLesionsParams, SkimageFundusParams
from asklepios_tpdrseg.preprocess import pseudo_lesion_mask, sam_preprocess, sam_preprocess_mask

__all__ = ["FundusLesions", "LesionItem", "SkimageFundus", "find_ddr", "find_idrid"]

IDRID_IMAGES = "1. Original Images"
IDRID_MASKS = "2. All Segmentation Groundtruths"
IDRID_SPLITS = {"train": "a. Training Set", "test": "b. Testing Set"}
DDR_SPLITS = {"train": "train", "val": "valid", "test": "test"}
DDR_LABEL_DIRS = ("label", "segmentation label", "labels", "annotation")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class LesionItem:
    """One (image, lesion) pair: the image index, lesion index and the mask file (or None)."""

    image: int
    lesion: int
    mask: str | None


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ComponentError(f"tpdrseg.fundus_lesions: {what} folder {str(path)!r} is missing")
    return path


def find_idrid(
    root: Path, split: str, lesions: Sequence[str]
) -> list[tuple[Path, list[Path | None]]]:
    """Return ``(image, [mask per lesion])`` of IDRiD's segmentation ``split`` under ``root``.

    Masks are ``<id>_<LESION>.tif`` anywhere under the split's ground-truth folder.
    """
    images = _require_dir(root / IDRID_IMAGES / IDRID_SPLITS[split], f"IDRiD {split} image")
    masks_root = _require_dir(root / IDRID_MASKS / IDRID_SPLITS[split], f"IDRiD {split} mask")
    masks = {p.stem: p for p in masks_root.rglob("*") if p.is_file()}
    return [
        (image, [masks.get(f"{image.stem}_{lesion}") for lesion in lesions])
        for image in _images(images)
    ]


def find_ddr(
    root: Path, split: str, lesions: Sequence[str]
) -> list[tuple[Path, list[Path | None]]]:
    """Return ``(image, [mask per lesion])`` of DDR's lesion-segmentation ``split``.

    Layout: ``<split>/image/*.jpg`` and ``<split>/label/<LESION>/<stem>.tif`` (``label`` may be
    called ``segmentation label``).
    """
    base = _require_dir(root / DDR_SPLITS[split], f"DDR {split}")
    images = _require_dir(base / "image", f"DDR {split} image")
    labels = next((base / d for d in DDR_LABEL_DIRS if (base / d).is_dir()), None)
    if labels is None:
        raise ComponentError(
            f"tpdrseg.fundus_lesions: DDR {split} has no label folder (one of {DDR_LABEL_DIRS})"
        )
    masks = {
        lesion: {p.stem: p for p in (labels / lesion).glob("*") if p.is_file()}
        for lesion in lesions
    }
    return [(image, [masks[le].get(image.stem) for le in lesions]) for image in _images(images)]


class _LesionSplit(torch.utils.data.Dataset):
    """Items of one split, read and SAM-preprocessed on access."""

    def __init__(
        self, images: Sequence[str], items: Sequence[LesionItem], size: int, threshold: float
    ) -> None:
        self.images = list(images)
        self.items = list(items)
        self.size = size
        self.threshold = threshold

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        item = self.items[index]
        with Image.open(self.images[item.image]) as handle:
            pixels = np.asarray(handle.convert("RGB"))
        if item.mask is None:
            mask = torch.zeros(1, self.size, self.size, dtype=torch.uint8)
        else:
            with Image.open(item.mask) as handle:
                mask = sam_preprocess_mask(np.asarray(handle), self.size, self.threshold)
        return {
            "image": sam_preprocess(pixels, self.size),
            "mask": mask,
            "lesion": torch.tensor(item.lesion),
        }


class _TensorSplit(torch.utils.data.Dataset):
    """Items of one split from preprocessed tensors in memory."""

    def __init__(
        self,
        images: torch.Tensor,
        masks: dict[tuple[int, int], torch.Tensor],
        items: Sequence[LesionItem],
    ) -> None:
        self.images = images
        self.masks = masks
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return {
            "image": self.images[item.image].clone(),
            "mask": self.masks[(item.image, item.lesion)].clone(),
            "lesion": torch.tensor(item.lesion),
        }


def _facts(items: Sequence[LesionItem], lesions: Sequence[str], size: int) -> DataFacts:
    return DataFacts(
        task="segmentation",
        num_samples=len(items),
        in_channels=3,
        image_size=(size, size),
        extras={
            "lesions": tuple(lesions),
            "item_images": tuple(item.image for item in items),
            "item_lesions": tuple(item.lesion for item in items),
        },
    )


class FundusLesions(Dataset):
    """Read IDRiD or DDR lesion masks as one item per (image, lesion), SAM-preprocessed.

    IDRiD (``root`` = its ``A. Segmentation`` folder): train / test from the challenge split,
    ``val_fraction`` of the training images held out as ``val``. DDR (``root`` = its
    ``lesion_segmentation`` folder): its train / valid / test splits.

    Raises:
        ComponentError: a missing folder, an empty split or a ``val_fraction`` DDR cannot use.
    """

    def __init__(self, params: FundusLesionsParams, ctx: BuildContext) -> None:
        self.params = params
        root = Path(params.root).expanduser()
        lesions = list(params.lesions)
        if params.layout == "ddr" and params.val_fraction:
            raise ComponentError(
                "tpdrseg.fundus_lesions: DDR has its own validation split; set val_fraction: 0"
            )
        find = find_idrid if params.layout == "idrid" else find_ddr
        splits = {name: find(root, name, lesions) for name in self._source_splits()}
        if params.val_fraction:
            train = splits["train"]
            order = np.random.default_rng(ctx.seed).permutation(len(train))
            held = max(1, round(params.val_fraction * len(train)))
            splits["val"] = [train[i] for i in sorted(order[:held])]
            splits["train"] = [train[i] for i in sorted(order[held:])]
        self.split_names = tuple(n for n in ("train", "val", "test") if n in splits)
        self._splits: dict[str, _LesionSplit] = {}
        for name, found in splits.items():
            items = [
                LesionItem(i, lesion, None if mask is None else str(mask))
                for i, (_, masks) in enumerate(found)
                for lesion, mask in enumerate(masks)
                if mask is not None or params.missing_mask == "empty"
            ]
            if not items:
                raise ComponentError(
                    f"tpdrseg.fundus_lesions: split {name!r} under {str(root)!r} has no "
                    f"(image, lesion) item for lesions {lesions}; check root and layout"
                )
            images = [str(image) for image, _ in found]
            self._splits[name] = _LesionSplit(
                images, items, params.image_size, params.mask_threshold
            )
        self._facts = _facts(self._splits["train"].items, lesions, params.image_size)

    def _source_splits(self) -> tuple[str, ...]:
        return tuple(IDRID_SPLITS if self.params.layout == "idrid" else DDR_SPLITS)

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self._splits[name]

    def facts(self) -> DataFacts:
        return self._facts

    def files(self, name: str) -> Iterable[tuple[int, str]]:
        """Return ``(row, path)`` of every image and mask file split ``name`` reads."""
        split = self._splits[name]
        for row, item in enumerate(split.items):
            yield row, split.images[item.image]
            if item.mask is not None:
                yield row, item.mask


class SkimageFundus(Dataset):
    """Tile scikit-image's retina with pseudo lesion masks (demo data, no download).

    ``skimage.data.retina()`` is cut into ``tiles x tiles`` crops and ``skimage.data.
    microaneurysms()`` (a green-channel crop with microaneurysms) is added; masks are top-hat >
    Otsu pseudo-masks of the green channel (MA: dark, EX: bright). Splits by image: the last
    tile and the microaneurysm crop are ``test``, the tile before them ``val``. Not annotations:
    for seeing the pipeline run, never for numbers.
    """

    def __init__(self, params: SkimageFundusParams, ctx: BuildContext) -> None:
        from skimage import data

        self.params = params
        size = params.image_size
        retina = data.retina()
        step = retina.shape[0] // params.tiles
        crops = [
            retina[r * step : (r + 1) * step, c * step : (c + 1) * step]
            for r in range(params.tiles)
            for c in range(params.tiles)
        ]
        crops.append(np.repeat(data.microaneurysms()[..., None], 3, axis=-1))
        kinds = {"MA": "dark", "EX": "bright"}
        lesions = list(params.lesions)
        self.images = torch.stack([sam_preprocess(crop, size) for crop in crops])
        self.masks = {
            (i, j): sam_preprocess_mask(
                pseudo_lesion_mask(crop[..., 1], kinds[lesion], params.radius), size
            )
            for i, crop in enumerate(crops)
            for j, lesion in enumerate(lesions)
        }
        count = len(crops)
        groups = {"train": range(count - 3), "val": [count - 3], "test": [count - 2, count - 1]}
        if count - 3 < 1:
            groups = {"train": range(count), "test": [count - 1]}
        self.split_names = tuple(groups)
        self._items = {
            name: [LesionItem(i, j, None) for i in indices for j in range(len(lesions))]
            for name, indices in groups.items()
        }
        self._facts = _facts(self._items["train"], lesions, size)

    def split(self, name: str) -> torch.utils.data.Dataset:
        return _TensorSplit(self.images, self.masks, self._items[name])

    def facts(self) -> DataFacts:
        return self._facts
