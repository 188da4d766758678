"""OphNet evaluators: ActivityNet tIoU mAP for localisation, frame-wise phase recognition.

Both gather per-video results across ranks with :class:`~asklepios_sdk.SequenceEvaluator`
(item states ordered by the samples' ``index``), so a 2-rank evaluation equals the one-process
one exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from asklepios_sdk import Batch, BuildContext, ComponentError, SequenceEvaluator
from asklepios_sdk.sequences import IGNORE_INDEX, batch_index, example_sequence_batch
from torch import Tensor

from asklepios_ophnet._tal import detection_ap
from asklepios_ophnet.params import PhaseRecognitionEvaluatorParams, TALMapEvaluatorParams

__all__ = ["PhaseRecognitionEvaluator", "TALMapEvaluator", "macro_scores"]


def _tiou_key(tiou: float) -> str:
    return f"mAP@{tiou:g}"


class TALMapEvaluator(SequenceEvaluator):
    """Score temporal detections with ActivityNet mAP at several tIoU thresholds (x100).

    Keys ``mAP@0.3`` ... ``mAP@0.7`` (mean AP over the ground-truth classes at each threshold)
    and ``average`` (their mean), in percent; :meth:`artifacts` gives AP per class and threshold.
    Predictions come from the model's ``segments [B, P, 2]``, ``scores``, ``labels`` and
    ``segment_mask``; ground truth from the batch's ``segments``, ``segment_labels`` and
    ``segment_mask``. Times are matched in seconds (``t * step_seconds + time_offset``) when the
    batch has them, else in steps. Semantics of OphNet's ``libs/utils/metrics.py``, with the
    robust default of dropping predicted labels outside the ground truth's classes
    (``faithful: true`` keeps the reference's behaviour). See ``asklepios_ophnet._tal``.
    """

    name: ClassVar[str] = "tal_map"
    higher_is_better = True
    headline_keys: ClassVar[tuple[str, ...]] = ("average", "mAP@0.5")

    def __init__(self, params: TALMapEvaluatorParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.tious = np.asarray(params.tious, dtype=np.float64)
        # per instance: the keys follow params.tious (the kit and the core read the instance)
        self.__dict__["output_keys"] = (*(_tiou_key(t) for t in params.tious), "average")
        self.add_item_state("predictions", torch.float64, width=4)
        self.add_item_state("ground_truth", torch.float64, width=3)
        self._per_class: tuple[np.ndarray, np.ndarray] | None = None

    def _to_time(self, segments: Tensor, batch: Batch) -> Tensor:
        segments = segments.double()
        if self.params.units == "seconds" and "step_seconds" in batch:
            scale = torch.as_tensor(batch["step_seconds"], dtype=torch.float64)
            offset = torch.as_tensor(batch.get("time_offset", 0.0), dtype=torch.float64)
            shape = (-1, 1, 1)
            segments = segments * scale.to(segments.device).reshape(shape) + offset.to(
                segments.device
            ).reshape(shape)
        return segments

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        for key in ("segments", "scores", "labels", "segment_mask"):
            if key not in outputs:
                raise ComponentError(
                    f"ophnet.tal_map: the model output has no {key!r} (keys {sorted(outputs)}); "
                    "it scores detections: a model such as ophnet.mstcn returns them in eval mode"
                )
        # one float64 row per detection (half-precision outputs under AMP would round class ids)
        predicted = torch.cat(
            [
                self._to_time(outputs["segments"].detach(), batch),
                outputs["scores"].detach().double()[..., None],
                outputs["labels"].detach().double()[..., None],
            ],
            dim=-1,
        )
        truth = torch.cat(
            [
                self._to_time(batch["segments"], batch),
                batch["segment_labels"].double()[..., None],
            ],
            dim=-1,
        )
        self.append_padded(
            batch_index(batch, self.name),
            predictions=(predicted, outputs["segment_mask"]),
            ground_truth=(truth, batch["segment_mask"]),
        )

    def compute(self) -> dict[str, Tensor]:
        table = self.items()
        pred, gt = table.flat["predictions"].numpy(), table.flat["ground_truth"].numpy()
        videos = np.arange(len(table))
        pred_video = np.repeat(videos, table.rows["predictions"].numpy())
        gt_video = np.repeat(videos, table.rows["ground_truth"].numpy())
        ap, classes = detection_ap(
            pred_video,
            pred[:, :2],
            pred[:, 2],
            pred[:, 3].astype(np.int64),
            gt_video,
            gt[:, :2],
            gt[:, 2].astype(np.int64),
            self.tious,
            tol=self.params.duplicate_tol,
            faithful=self.params.faithful,
        )
        self._per_class = (ap, classes)
        per_tiou = ap.mean(axis=1) * 100 if len(classes) else np.full(len(self.tious), np.nan)
        result = {
            _tiou_key(t): torch.tensor(float(v), dtype=torch.float64)
            for t, v in zip(self.params.tious, per_tiou, strict=True)
        }
        result["average"] = torch.tensor(float(per_tiou.mean()), dtype=torch.float64)
        return result

    def artifacts(self) -> dict[str, Any]:
        """Return AP (x100) per ground-truth class and tIoU of the last compute."""
        if self._per_class is None:
            return {}
        ap, classes = self._per_class
        return {
            "per_class_ap": {
                "title": "AP per class (x100)",
                "rows": [str(int(c)) for c in classes],
                "columns": [f"{t:g}" for t in self.params.tious],
                "values": (ap.T * 100).round(4).tolist(),
                "label": "AP",
            }
        }

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return noisy copies of the ground truth plus random detections, and the batch."""
        batch = example_sequence_batch(ctx, batch_size, num_segments=3)
        classes = ctx.data.num_classes or 3
        gen = torch.Generator().manual_seed(3)
        truth, labels = batch["segments"], batch["segment_labels"]
        jitter = torch.randn(truth.shape, generator=gen)
        extra = torch.rand(truth.shape, generator=gen).sort(dim=-1).values * truth.amax()
        segments = torch.cat([truth + jitter, extra], dim=1)
        return {
            "segments": segments,
            "scores": torch.rand(segments.shape[:2], generator=gen),
            "labels": torch.cat(
                [labels.clamp_min(0), torch.randint(0, classes, labels.shape, generator=gen)],
                dim=1,
            ),
            "segment_mask": torch.cat([batch["segment_mask"], batch["segment_mask"]], dim=1),
        }, batch


def macro_scores(
    truth: np.ndarray, predicted: np.ndarray, labels: np.ndarray
) -> tuple[float, float, float]:
    """Return macro precision, recall and F1 over ``labels`` (absent classes count 0).

    As scikit-learn's ``precision_recall_fscore_support(average="macro", labels=...,
    zero_division=0)``: a prediction of a label outside ``labels`` is a miss for the true class.
    """
    tp = np.array([np.sum((truth == k) & (predicted == k)) for k in labels], dtype=np.float64)
    predicted_k = np.array([np.sum(predicted == k) for k in labels], dtype=np.float64)
    true_k = np.array([np.sum(truth == k) for k in labels], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted_k > 0, tp / predicted_k, 0.0)
        recall = np.where(true_k > 0, tp / true_k, 0.0)
        denominator = predicted_k + true_k
        f1 = np.where(denominator > 0, 2 * tp / denominator, 0.0)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


class PhaseRecognitionEvaluator(SequenceEvaluator):
    """Score frame-wise phase predictions: video-level accuracy, macro P/R/F1, rank score.

    ``video_accuracy`` is the mean over videos of each video's frame accuracy (not pooled over
    frames); ``macro_precision``/``macro_recall``/``macro_f1`` pool every frame over a fixed
    label list (``labels``, default ``0..K-1``; a class never seen or predicted counts 0);
    ``rank_score = (video_accuracy + macro_f1) / 2`` (the APTOS 2025 OphNet challenge's).
    Unlabelled (-100) and padded steps are left out.
    """

    name: ClassVar[str] = "phase_recognition"
    higher_is_better = True
    output_keys: ClassVar[tuple[str, ...]] = (
        "video_accuracy",
        "macro_precision",
        "macro_recall",
        "macro_f1",
        "rank_score",
    )
    headline_keys: ClassVar[tuple[str, ...]] = ("rank_score", "video_accuracy", "macro_f1")

    def __init__(self, params: PhaseRecognitionEvaluatorParams, ctx: BuildContext) -> None:
        super().__init__()
        classes = params.num_classes or ctx.data.num_classes
        if params.labels is None and not classes:
            raise ComponentError(
                "ophnet.phase_recognition: needs num_classes or labels; the data give none. "
                "Set evaluators.N.num_classes"
            )
        chosen = params.labels if params.labels is not None else range(int(classes or 0))
        self.labels = np.asarray(list(chosen), dtype=np.int64)
        self.add_item_state("frames", torch.int64, width=2)

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        predicted = outputs["logits"].detach().argmax(dim=-1)
        truth = batch["frame_labels"]
        valid = batch["mask"].bool() & (truth != IGNORE_INDEX)
        pairs = torch.stack([truth, predicted.to(truth.dtype)], dim=-1)
        self.append_padded(batch_index(batch, self.name), frames=(pairs, valid))

    def compute(self) -> dict[str, Tensor]:
        frames = [f.numpy() for f in self.items().values["frames"]]
        accuracies = [float(np.mean(f[:, 0] == f[:, 1])) for f in frames if len(f)]
        pooled = np.concatenate(frames) if frames else np.zeros((0, 2), dtype=np.int64)
        precision, recall, f1 = macro_scores(pooled[:, 0], pooled[:, 1], self.labels)
        accuracy = float(np.mean(accuracies)) if accuracies else float("nan")
        values = {
            "video_accuracy": accuracy,
            "macro_precision": precision,
            "macro_recall": recall,
            "macro_f1": f1,
            "rank_score": (accuracy + f1) / 2,
        }
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in values.items()}
