"""Params of the long-tailed datasets.

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "DigitsLTParams",
    "LongTailedParams",
    "SplitListParams",
]


class DigitsLTParams(Params):
    """Params of :class:`~asklepios_longtail.datasets.DigitsLT`."""

    n_max: int = Field(120, ge=1, description="Training images of digit 0.")
    imbalance_ratio: float = Field(100.0, ge=1, description="r in n_c = round(n_max r^{−c/9}).")
    test_per_class: int = Field(50, ge=1, description="Balanced test images per class.")
    val_per_class: int = Field(
        4, ge=0, description="Balanced validation images per class (0: no validation split)."
    )
    seed: int = Field(0, description="Seed s of RandomState(s) that shuffles each class.")
    as_image: bool = Field(False, description="Samples as (1, 8, 8) images, not 64 features.")


class SplitListParams(Params):
    """Params of :class:`~asklepios_longtail.datasets.SplitList`."""

    root: str = Field(description="Image folder; entries of the split lists are relative to it.")
    lists: str = Field(description="Folder holding the split lists and the label map.")
    train: str = Field("train.npy", description="Training list (e.g. train_100.npy).")
    val: str | None = Field("val.npy", description="Validation list, or null.")
    test: str | None = Field("test.npy", description="Test list, or null.")
    label_map: str = Field("dic.npy", description="labels.csv (path,label) or MONICA's dic.npy.")
    trust_pickle: bool = Field(
        False, description="Allow reading a pickled dic.npy (only for files you trust)."
    )
    num_classes: int | None = Field(None, ge=2, description="C; default: max label + 1.")
    image_size: int = Field(224, ge=1, description="Images are resized to this square size.")
    mode: Literal["RGB", "L"] = Field("RGB", description="PIL mode of the loaded images.")


class LongTailedParams(Params):
    """Params of :class:`~asklepios_longtail.datasets.LongTailed`."""

    imbalance_ratio: float = Field(100.0, ge=1, description="r = n_max / n_min of the profile.")
    n_max: int | None = Field(None, ge=1, description="Head count; default: the natural maximum.")
    rounding: Literal["round", "ceil", "floor"] = Field(
        "round", description="round (Kvasir, NCT, MedMNIST) or ceil (ISIC) of n_max / f^i."
    )
    reindex_by_frequency: bool = Field(
        True, description="Relabel so that class 0 is the most frequent (MONICA's label maps)."
    )
    seed: int = Field(1, description="Seed of the per-class selection (MONICA: 1).")
