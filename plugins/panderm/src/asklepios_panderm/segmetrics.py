"""PanDerm's segmentation scores: LCC + hole filling, per-image Dice and Jaccard (§6.5).

Each prediction is ``argmax`` over classes, then its largest 8-connected component with holes
filled (the repo's ``largestConnectComponent``); Dice ``2|A n B| / (|A| + |B|)`` and Jaccard
``|A n B| / |A u B|`` (medpy's ``dc``/``jc``) are computed per image and averaged.

Empty masks are explicit: when GT and prediction are both empty the image scores 1 (``empty:
score``) or is left out (``empty: exclude``). Two repo quirks are flags: ``faithful_empty_gt``
sets the centre pixel of an empty GT to 1 (the repo's test step), and
``faithful_empty_prediction`` reproduces that the LCC of an empty prediction is the background,
i.e. an all-lesion mask.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from asklepios_sdk import Batch, BuildContext, ComponentError, Evaluator, example_batch
from torch import Tensor

from asklepios_panderm.params import SegMetricsParams

__all__ = ["SegMetrics", "dice_jaccard", "largest_component_filled"]

_EIGHT = np.ones((3, 3), dtype=bool)


def largest_component_filled(mask: np.ndarray, *, faithful_empty: bool = False) -> np.ndarray:
    """Return the largest 8-connected component of a binary mask with its holes filled.

    Ties go to the component met first in raster order. An empty mask stays empty, unless
    ``faithful_empty`` (the repo: the background becomes the "largest component").
    """
    from scipy import ndimage

    labelled, count = ndimage.label(mask.astype(bool), structure=_EIGHT)
    if count == 0:
        return np.ones_like(mask, dtype=bool) if faithful_empty else np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labelled.ravel())[1:]
    largest = labelled == (int(np.argmax(sizes)) + 1)
    return np.asarray(ndimage.binary_fill_holes(largest), dtype=bool)


def dice_jaccard(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float] | None:
    """Return ``(Dice, Jaccard)`` of two binary masks; ``None`` when both are empty."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    inter = int(np.count_nonzero(pred & truth))
    union = int(np.count_nonzero(pred | truth))
    if union == 0:
        return None
    return 2.0 * inter / (int(pred.sum()) + int(truth.sum())), inter / union


class SegMetrics(Evaluator):
    """Score lesion masks per image: LCC + hole fill, then mean Dice and Jaccard (§6.5)."""

    name = "seg"
    higher_is_better = True
    output_keys = ("dice", "jaccard")
    headline_keys = ("dice", "jaccard")

    dice_sum: Tensor
    jaccard_sum: Tensor
    count: Tensor

    def __init__(self, params: SegMetricsParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.add_state(
            "dice_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state(
            "jaccard_sum", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        logits, masks = outputs["logits"], batch.get("mask")
        if masks is None or logits.dim() != 4:
            raise ComponentError(
                "panderm.seg_metrics: needs per-pixel logits [B, K, H, W] and a batch 'mask'"
            )
        p = self.params
        preds = logits.argmax(dim=1).cpu().numpy() > 0
        truths = masks.cpu().numpy() > 0
        dice = jaccard = count = 0.0
        for pred, truth in zip(preds, truths, strict=True):
            if p.postprocess:
                pred = largest_component_filled(pred, faithful_empty=p.faithful_empty_prediction)
            truth = truth.copy()
            if p.faithful_empty_gt and not truth.any():
                truth[truth.shape[0] // 2, truth.shape[1] // 2] = True
            scores = dice_jaccard(pred, truth)
            if scores is None:
                if p.empty == "exclude":
                    continue
                scores = (1.0, 1.0)
            dice, jaccard, count = dice + scores[0], jaccard + scores[1], count + 1
        self.dice_sum += dice
        self.jaccard_sum += jaccard
        self.count += count

    def compute(self) -> dict[str, Tensor]:
        count = self.count.clamp_min(1)
        return {"dice": self.dice_sum / count, "jaccard": self.jaccard_sum / count}

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return per-pixel logits and lesion masks."""
        facts = ctx.data.replace(task="segmentation", num_classes=2, image_size=(12, 12))
        batch = example_batch(ctx.replace(data=facts), batch_size)
        gen = torch.Generator().manual_seed(2)
        logits = torch.randn(batch_size, 2, 12, 12, generator=gen)
        return {"logits": logits}, batch
