"""Built-in evaluator ``core.classification`` on torchmetrics' functional metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from asklepios_sdk import Batch, BuildContext, ComponentError, Evaluator
from torch import Tensor
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
)
from torchmetrics.utilities import dim_zero_cat

from asklepios.builtins.params import ClassificationEvaluatorParams

__all__ = ["ClassificationEvaluator"]


class ClassificationEvaluator(Evaluator):
    """Multi-class top-1 and balanced accuracy, macro-F1, macro AUROC, ECE and confusion matrix.

    Keys: ``accuracy`` (top-1), ``balanced_accuracy`` (mean per-class recall), ``macro_f1``,
    ``auroc`` (one-vs-rest macro AUROC of the softmax) and ``ece`` (expected calibration error
    with ``ece_bins`` equal-width bins, lower is better). :meth:`artifacts` gives the confusion
    matrix (rows: true class) of the last :meth:`compute`, which the engine stores and plots.
    Probabilities and targets are ``cat`` states, so every rank's samples take part after sync.
    """

    probs: list[Tensor]  # "cat" states, registered with add_state
    target: list[Tensor]
    name: ClassVar[str] = "classification"
    higher_is_better = True
    key_directions: ClassVar[Mapping[str, bool]] = {"ece": False}
    output_keys: ClassVar[tuple[str, ...]] = (
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "auroc",
        "ece",
    )
    headline_keys: ClassVar[tuple[str, ...]] = (
        "balanced_accuracy",
        "accuracy",
        "macro_f1",
        "auroc",
        "ece",
    )
    full_state_update = False

    def __init__(self, params: ClassificationEvaluatorParams, ctx: BuildContext) -> None:
        super().__init__()
        num_classes = params.num_classes or ctx.data.num_classes
        if not num_classes or num_classes < 2:
            raise ComponentError(
                "core.classification: needs at least 2 classes; the dataset states "
                f"{ctx.data.num_classes!r}. Set --set evaluators.0.num_classes=K"
            )
        self.num_classes = int(num_classes)
        self.ece_bins = params.ece_bins
        self.report_confusion = params.confusion_matrix
        self._confusion: Tensor | None = None
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        logits = outputs["logits"].detach().float()
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ComponentError(
                f"core.classification: expected logits of shape (N, {self.num_classes}), "
                f"got {tuple(logits.shape)}"
            )
        self.probs.append(logits.softmax(dim=1))
        self.target.append(batch["label"].detach().long().reshape(-1))

    def compute(self) -> dict[str, Tensor]:
        probs = dim_zero_cat(self.probs)
        target = dim_zero_cat(self.target)
        k = self.num_classes
        result = {
            "accuracy": multiclass_accuracy(probs, target, k, average="micro"),
            "balanced_accuracy": multiclass_accuracy(probs, target, k, average="macro"),
            "macro_f1": multiclass_f1_score(probs, target, k, average="macro"),
            "auroc": multiclass_auroc(probs, target, k, average="macro"),
            "ece": multiclass_calibration_error(probs, target, k, n_bins=self.ece_bins),
        }
        if self.report_confusion:  # computed here, on the synced states
            self._confusion = multiclass_confusion_matrix(probs, target, k)
        return result

    def artifacts(self) -> dict[str, Any]:
        """Return non-scalar results of the last ``compute``: the confusion matrix."""
        return {} if self._confusion is None else {"confusion_matrix": self._confusion}
