"""Sampler ``tpdrseg.lesion_sampler``: one lesion per image per epoch (RECONSTRUCTED recipe).

The text prompt selects the lesion, so an epoch visits every training image once, each time for
one of its lesions drawn at random (uniformly, or with ``lesion_weights``), in a shuffled order
drawn from ``(seed, epoch)`` and split across ranks by :class:`~asklepios_sdk.ShardedSampler`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from asklepios_sdk import BuildContext, ComponentError, ShardedSampler

from asklepios_tpdrseg.params import LESIONS, LesionSamplerParams

__all__ = ["LesionSampler"]


class LesionSampler(ShardedSampler):
    """Draw one (image, lesion) item per training image per epoch, in a shuffled order.

    Needs the dataset facts ``extras["item_images"]`` and ``extras["item_lesions"]`` (given by
    ``tpdrseg.fundus_lesions`` and ``tpdrseg.skimage_fundus``).

    Raises:
        ComponentError: the facts lack the item lists, or ``lesion_weights`` names unknown lesions.
    """

    def __init__(self, params: LesionSamplerParams, ctx: BuildContext) -> None:
        extras = ctx.data.extras
        images: Sequence[int] | None = extras.get("item_images")
        lesions: Sequence[int] | None = extras.get("item_lesions")
        if images is None or lesions is None:
            raise ComponentError(
                "tpdrseg.lesion_sampler: the dataset facts have no extras['item_images'] / "
                "['item_lesions']; use it with tpdrseg.fundus_lesions or tpdrseg.skimage_fundus"
            )
        super().__init__(len(images), ctx.seed, ctx.rank, ctx.world_size)
        names = tuple(extras.get("lesions") or LESIONS)
        weights = dict(params.lesion_weights or {})
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ComponentError(
                f"tpdrseg.lesion_sampler: lesion_weights name {unknown}, not among {names}"
            )
        per_item = np.array([weights.get(names[le], 1.0) for le in lesions], dtype=float)
        image_ids = np.asarray(images, dtype=np.int64)
        self.groups = [np.flatnonzero(image_ids == i) for i in np.unique(image_ids)]
        self.weights = [per_item[g] for g in self.groups]
        self.groups = [g for g, w in zip(self.groups, self.weights, strict=True) if w.sum() > 0]
        self.weights = [w / w.sum() for w in self.weights if w.sum() > 0]
        if not self.groups:
            raise ComponentError("tpdrseg.lesion_sampler: every lesion has weight 0")

    def epoch_length(self) -> int:
        """Return the number of training images (one item each per epoch)."""
        return len(self.groups)

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        """Return one item per image (lesion drawn by weight), images in a random order."""
        picks = np.array(
            [generator.choice(g, p=w) for g, w in zip(self.groups, self.weights, strict=True)]
        )
        return picks[generator.permutation(len(picks))]
