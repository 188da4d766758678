"""Evaluator ``tpdrseg.lesion_metrics``: per-lesion Dice, IoU and pixel AUPR, plus overlays.

For each lesion, with ``p = sigmoid(logits) >= threshold`` against the binary mask:

- ``<lesion>/dice_dataset``, ``<lesion>/iou_dataset``: over all pixels of the split at once,
  ``Dice = 2 TP / (2 TP + FP + FN)``, ``IoU = TP / (TP + FP + FN)`` (counts summed over images);
- ``<lesion>/dice_per_image``, ``<lesion>/iou_per_image``: the same per image, averaged;
- ``<lesion>/aupr_dataset``: area under the precision-recall curve over all pixel scores of the
  split (the IDRiD challenge metric), ``AP = sum_k (R_k - R_{k+1}) P_k``; binned over
  ``aupr_bins`` equally spaced thresholds (as ``torchmetrics.BinaryAveragePrecision(thresholds=
  aupr_bins)``) or exact;
- ``mean/<metric>``: the mean over the lesions that have a value.

Empty ground truth (an image, or a lesion over the whole split) follows ``empty_gt``: ``one``
gives Dice = IoU = 1 when nothing is predicted either and 0 otherwise; ``exclude`` leaves it out
(NaN when nothing is left). AUPR without any lesion pixel is NaN. Metrics are computed at the SAM
input resolution (padding included, which is background in the mask). Counts and histograms are
``sum`` states, so ranks sync exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from asklepios_sdk import BuildContext, ComponentError, Evaluator
from torch import Tensor

from asklepios_tpdrseg.losses import binary_target
from asklepios_tpdrseg.params import LESIONS, LesionMetricsParams

__all__ = ["LesionMetrics", "binned_average_precision", "overlap_counts"]

METRICS = ("dice_dataset", "iou_dataset", "dice_per_image", "iou_per_image", "aupr_dataset")


def overlap_counts(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Return per-image ``(TP, FP, FN)`` of boolean ``(B, ...)`` prediction and target."""
    pred, target = pred.flatten(1), target.flatten(1)
    tp = (pred & target).sum(1)
    return tp, (pred & ~target).sum(1), (~pred & target).sum(1)


def binned_average_precision(positives: Tensor, negatives: Tensor) -> Tensor:
    """Return AP from score histograms over thresholds ``linspace(0, 1, T)``.

    ``positives[k]`` / ``negatives[k]`` count pixels whose score ``s`` has ``t_k <= s <
    t_{k+1}``; a pixel is predicted positive at ``t_k`` when ``s >= t_k``. Matches
    ``torchmetrics``' binned ``BinaryAveragePrecision``; NaN without positives.
    """
    tps = positives.flip(0).cumsum(0).flip(0).double()
    fps = negatives.flip(0).cumsum(0).flip(0).double()
    if tps[0] == 0:
        return torch.tensor(float("nan"), dtype=torch.float64)
    precision = torch.where(tps + fps > 0, tps / (tps + fps).clamp_min(1), torch.ones_like(tps))
    recall = tps / tps[0]
    precision = torch.cat([precision, precision.new_ones(1)])
    recall = torch.cat([recall, recall.new_zeros(1)])
    return -((recall[1:] - recall[:-1]) * precision[:-1]).sum()


def _ratio(numerator: Tensor, denominator: Tensor, empty: Tensor, mode: str) -> Tensor:
    """Return ``numerator / denominator`` with the empty-GT convention where ``empty``."""
    value = numerator.double() / denominator.double().clamp_min(1)
    if mode == "one":
        return torch.where(denominator == 0, torch.ones_like(value), value)
    return torch.where(empty, torch.full_like(value, float("nan")), value)


class LesionMetrics(Evaluator):
    """Report per-lesion Dice, IoU (dataset-pixel and per-image) and pixel AUPR.

    Inputs: ``outputs["logits"]`` ``(B, 1, H, W)``, ``batch["mask"]`` and ``batch["lesion"]``.
    See the module docstring for the formulas and conventions. With ``overlays`` > 0 and a run
    directory, rank 0 draws image, ground truth and prediction of the first few images of each
    evaluation into ``overlays/<stage>/eval-NNNN.png``.
    """

    name: ClassVar[str] = "lesions"
    higher_is_better = True
    headline_keys: ClassVar[tuple[str, ...]] = (
        "mean/dice_dataset",
        "mean/aupr_dataset",
        "*/dice_dataset",
    )
    full_state_update = False
    tp: Tensor
    fp: Tensor
    fn: Tensor
    empty_images: Tensor
    dice_sum: Tensor
    iou_sum: Tensor
    images: Tensor
    positives: Tensor
    negatives: Tensor
    thresholds: Tensor
    scores: list[Tensor]
    targets: list[Tensor]
    score_lesions: list[Tensor]

    def __init__(self, params: LesionMetricsParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.dataset_lesions = tuple(ctx.data.extras.get("lesions") or LESIONS)
        self.lesions = tuple(params.lesions or self.dataset_lesions)
        unknown = [name for name in self.lesions if name not in self.dataset_lesions]
        if unknown:
            raise ComponentError(
                f"tpdrseg.lesion_metrics: lesions {unknown} are not among the dataset's "
                f"{self.dataset_lesions}"
            )
        count = len(self.dataset_lesions)
        for state in ("tp", "fp", "fn", "empty_images", "dice_sum", "iou_sum", "images"):
            self.add_state(state, torch.zeros(count, dtype=torch.float64), dist_reduce_fx="sum")
        if params.aupr_bins is not None:
            zeros = torch.zeros(count, params.aupr_bins, dtype=torch.float64)
            self.add_state("positives", zeros.clone(), dist_reduce_fx="sum")
            self.add_state("negatives", zeros.clone(), dist_reduce_fx="sum")
            self.register_buffer(
                "thresholds", torch.linspace(0, 1, params.aupr_bins), persistent=False
            )
        else:
            self.add_state("scores", [], dist_reduce_fx="cat")
            self.add_state("targets", [], dist_reduce_fx="cat")
            self.add_state("score_lesions", [], dist_reduce_fx="cat")
        self.output_dir = ctx.output_dir if ctx.rank == 0 else None
        self.stage = ctx.stage
        self.evaluations = 0
        self._drawn: list[dict[str, Any]] = []

    def reset(self) -> None:
        """Reset the states and the images kept for the overlay."""
        super().reset()
        self._drawn = []

    def update(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        """Add a batch of mask logits, masks and lesion indices."""
        logits = outputs["logits"].detach().float()
        target = binary_target(logits, batch["mask"]) > 0.5
        lesion = torch.as_tensor(batch["lesion"], device=logits.device).long().view(-1)
        probs = torch.sigmoid(logits)
        pred = probs >= self.params.threshold
        tp, fp, fn = overlap_counts(pred, target)
        empty = (tp + fn) == 0
        for state, value in (("tp", tp), ("fp", fp), ("fn", fn), ("empty_images", empty)):
            getattr(self, state).index_add_(0, lesion, value.double())
        dice = _ratio(2 * tp, 2 * tp + fp + fn, empty, self.params.empty_gt)
        iou = _ratio(tp, tp + fp + fn, empty, self.params.empty_gt)
        keep = ~torch.isnan(dice)
        self.dice_sum.index_add_(0, lesion[keep], dice[keep])
        self.iou_sum.index_add_(0, lesion[keep], iou[keep])
        self.images.index_add_(0, lesion[keep], torch.ones_like(dice[keep]))
        if self.params.aupr_bins is not None:
            self._histogram(probs, target, lesion)
        else:
            self.scores.append(probs.flatten(1))
            self.targets.append(target.flatten(1))
            self.score_lesions.append(lesion)
        if self.params.overlays and self.output_dir and len(self._drawn) < self.params.overlays:
            self._keep_for_overlay(batch["image"], probs, target, lesion)

    def _histogram(self, probs: Tensor, target: Tensor, lesion: Tensor) -> None:
        bins = self.params.aupr_bins
        assert bins is not None
        index = torch.bucketize(probs.flatten(1), self.thresholds, right=True) - 1
        index = index.clamp(0, bins - 1) + (lesion * bins).view(-1, 1)
        flat, positive = index.flatten(), target.flatten(1).flatten()
        size = len(self.dataset_lesions) * bins
        pos = torch.bincount(flat[positive], minlength=size).view(-1, bins)
        neg = torch.bincount(flat[~positive], minlength=size).view(-1, bins)
        self.positives += pos.double()
        self.negatives += neg.double()

    def _keep_for_overlay(
        self, image: Tensor, probs: Tensor, target: Tensor, lesion: Tensor
    ) -> None:
        for i in range(image.shape[0]):
            if len(self._drawn) >= self.params.overlays:
                return
            self._drawn.append(
                {
                    "image": image[i].detach().float().cpu(),
                    "prob": probs[i, 0].cpu(),
                    "target": target[i, 0].cpu(),
                    "lesion": self.dataset_lesions[int(lesion[i])],
                }
            )

    def _aupr(self, index: int) -> float:
        if self.params.aupr_bins is not None:
            return float(binned_average_precision(self.positives[index], self.negatives[index]))
        from torchmetrics.functional.classification import binary_average_precision

        lesions = _cat(self.score_lesions)
        if lesions.numel() == 0 or not bool((lesions == index).any()):
            return float("nan")
        chosen = lesions == index
        scores, targets = _cat(self.scores)[chosen].flatten(), _cat(self.targets)[chosen].flatten()
        if not bool(targets.any()):
            return float("nan")
        return float(binary_average_precision(scores, targets.long()))

    def compute(self) -> dict[str, float]:
        """Return every lesion's metrics and their means (see the module docstring)."""
        mode = self.params.empty_gt
        empty = (self.tp + self.fn) == 0
        dice = _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, empty, mode)
        iou = _ratio(self.tp, self.tp + self.fp + self.fn, empty, mode)
        result: dict[str, float] = {}
        for name in self.lesions:
            i = self.dataset_lesions.index(name)
            seen = bool(self.images[i] > 0) or bool(self.empty_images[i] > 0)
            seen = seen or bool(self.tp[i] + self.fp[i] + self.fn[i] > 0)
            per_image = self.images[i].clamp_min(1)
            values: dict[str, float] = {
                "dice_dataset": float(dice[i]) if seen else math.nan,
                "iou_dataset": float(iou[i]) if seen else math.nan,
                "dice_per_image": float(self.dice_sum[i] / per_image)
                if self.images[i]
                else math.nan,
                "iou_per_image": float(self.iou_sum[i] / per_image) if self.images[i] else math.nan,
                "aupr_dataset": self._aupr(i),
            }
            result.update({f"{name}/{key}": value for key, value in values.items()})
        for key in METRICS:
            found = [result[f"{n}/{key}"] for n in self.lesions]
            found = [value for value in found if not math.isnan(value)]
            result[f"mean/{key}"] = sum(found) / len(found) if found else math.nan
        if self._drawn:
            self._write_overlay()
        return result

    def _write_overlay(self) -> None:
        from asklepios_tpdrseg.overlay import write_overlay

        assert self.output_dir is not None
        path = Path(self.output_dir) / "overlays" / self.stage / f"eval-{self.evaluations:04d}.png"
        write_overlay(path, self._drawn, self.params.threshold)
        self.evaluations += 1
        self._drawn = []

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Return mask logits, sparse masks and lesion indices covering every lesion."""
        gen = torch.Generator().manual_seed(2)
        mask = (torch.rand(batch_size, 1, 12, 12, generator=gen) > 0.8).to(torch.uint8)
        logits = 3 * (mask.float() - 0.5) + torch.randn(batch_size, 1, 12, 12, generator=gen)
        lesion = torch.arange(batch_size) % len(self.dataset_lesions)
        image = torch.randn(batch_size, 3, 12, 12, generator=gen)
        return {"logits": logits}, {"mask": mask, "lesion": lesion, "image": image}


def _cat(values: Any) -> Tensor:
    if isinstance(values, Tensor):
        return values
    return torch.cat(values) if values else torch.empty(0)
