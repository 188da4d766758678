"""PanDerm's fine-tuning metric set (§6.4; the repo's ``engine_for_finetuning.evaluate``).

From the softmax of the classifier's logits and the labels, gathered over the whole split:
accuracy, balanced accuracy, top-3 and top-5 accuracy over the ``K`` classes, macro sensitivity
and specificity from one-vs-rest confusion matrices, one-vs-rest macro AUROC, weighted F1 and
macro / weighted recall. As in the repo, the macro averages run over the classes present in the
labels or the predictions (scikit-learn's default), and a class never labelled counts a
sensitivity of 0. The repo's AUROC fails when a class has no test sample; here it averages the
classes that have both positives and negatives (NaN when none has).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import torch
from asklepios_sdk import Batch, BuildContext, ComponentError, Evaluator, example_batch
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from asklepios_panderm.params import FinetuneMetricsParams

__all__ = ["FinetuneMetrics", "finetune_metrics"]

KEYS = (
    "balanced_accuracy",
    "accuracy",
    "top3_accuracy",
    "top5_accuracy",
    "sensitivity",
    "specificity",
    "auroc",
    "weighted_f1",
    "recall_macro",
    "recall_weighted",
)


def _top_k(labels: np.ndarray, probs: np.ndarray, k: int) -> float:
    from sklearn.metrics import top_k_accuracy_score

    if k >= probs.shape[1]:
        return 1.0  # every class is among the top k (scikit-learn's value, without its warning)
    return float(top_k_accuracy_score(labels, probs, k=k, labels=np.arange(probs.shape[1])))


def _auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    onehot = np.eye(probs.shape[1], dtype=np.int64)[labels]
    scored = [c for c in range(probs.shape[1]) if 0 < onehot[:, c].sum() < len(labels)]
    if not scored:
        return math.nan
    return float(np.mean([roc_auc_score(onehot[:, c], probs[:, c]) for c in scored]))


def finetune_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Return the repo's fine-tuning metrics from labels ``[N]`` and probabilities ``[N, K]``."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        multilabel_confusion_matrix,
        recall_score,
    )

    preds = probs.argmax(axis=1)
    confusion = multilabel_confusion_matrix(labels, preds)  # classes in labels or predictions
    tn, fp = confusion[:, 0, 0], confusion[:, 0, 1]
    fn, tp = confusion[:, 1, 0], confusion[:, 1, 1]
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes without labels: scikit-learn warns, counts 0
        return {
            "balanced_accuracy": float(balanced_accuracy_score(labels, preds)),
            "accuracy": float(accuracy_score(labels, preds)),
            "top3_accuracy": _top_k(labels, probs, 3),
            "top5_accuracy": _top_k(labels, probs, 5),
            "sensitivity": float(np.where(tp + fn > 0, tp / (tp + fn), 0.0).mean()),
            "specificity": float(np.where(tn + fp > 0, tn / (tn + fp), 0.0).mean()),
            "auroc": _auroc(labels, probs),
            "weighted_f1": float(f1_score(labels, preds, average="weighted", zero_division=0)),
            "recall_macro": float(recall_score(labels, preds, average="macro", zero_division=0)),
            "recall_weighted": float(
                recall_score(labels, preds, average="weighted", zero_division=0)
            ),
        }


class FinetuneMetrics(Evaluator):
    """Score a fine-tuned classifier with PanDerm's fine-tuning metric set (§6.4)."""

    name = "finetune"
    higher_is_better = True
    output_keys = KEYS
    headline_keys = ("balanced_accuracy", "auroc", "weighted_f1")

    probs: list[Tensor]
    target: list[Tensor]

    def __init__(self, params: FinetuneMetricsParams, ctx: BuildContext) -> None:
        super().__init__()
        classes = params.num_classes or ctx.data.num_classes
        if not classes:
            raise ComponentError(
                "panderm.finetune_metrics: the number of classes is unknown; set num_classes"
            )
        self.num_classes: int = classes
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        logits, labels = outputs.get("logits"), batch.get("label")
        if logits is None or labels is None or logits.dim() != 2:
            raise ComponentError(
                "panderm.finetune_metrics: needs class logits [B, K] and a batch 'label' [B]"
            )
        if logits.shape[1] != self.num_classes:
            raise ComponentError(
                f"panderm.finetune_metrics: the logits have {logits.shape[1]} classes, the "
                f"evaluator {self.num_classes}; set num_classes or fix the head"
            )
        self.probs.append(torch.softmax(logits.detach().double(), dim=1))
        self.target.append(labels.detach().reshape(-1).long())

    def compute(self) -> dict[str, Tensor]:
        if isinstance(self.probs, list) and not self.probs:  # a list until synced, then a tensor
            return {key: torch.tensor(math.nan, dtype=torch.float64) for key in KEYS}
        probs = dim_zero_cat(self.probs).cpu().numpy()
        labels = dim_zero_cat(self.target).cpu().numpy()
        scores = finetune_metrics(labels, probs)
        return {key: torch.tensor(scores[key], dtype=torch.float64) for key in KEYS}

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return class logits and labels."""
        batch = example_batch(ctx, batch_size)
        gen = torch.Generator().manual_seed(4)
        logits = torch.randn(batch_size, self.num_classes, generator=gen)
        return {"logits": logits}, batch
