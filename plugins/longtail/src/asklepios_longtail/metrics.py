"""Shot-group evaluator: per-class recall, many/medium/few groups, AUROC/AUPRC/F1 (MONICA §5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from asklepios_sdk import BuildContext, ComponentError, Evaluator
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc, binary_average_precision
from torchmetrics.utilities import dim_zero_cat

from asklepios_longtail.params import ShotGroupsEvaluatorParams

__all__ = ["ShotGroupsEvaluator", "shot_groups"]

GROUPS = ("many", "medium", "few")


def shot_groups(
    num_classes: int,
    grouping: str = "index",
    head: int | None = None,
    medium: int | None = None,
    counts: Any = None,
    many_threshold: int = 100,
    few_threshold: int = 20,
) -> dict[str, list[int]]:
    """Return the class ids of the many, medium and few groups."""
    ids = list(range(num_classes))
    if grouping == "counts":
        if counts is None or len(counts) != num_classes:
            raise ComponentError(
                "longtail.shot_groups: grouping 'counts' needs the training class counts of all "
                f"{num_classes} classes (ctx.data.class_counts); use grouping: index instead"
            )
        return {
            "many": [c for c in ids if counts[c] > many_threshold],
            "medium": [c for c in ids if few_threshold <= counts[c] <= many_threshold],
            "few": [c for c in ids if counts[c] < few_threshold],
        }
    h = max(1, round(num_classes / 3)) if head is None else head
    m = max(h, round(2 * num_classes / 3)) if medium is None else medium
    if not 0 <= h <= m <= num_classes:
        raise ComponentError(
            f"longtail.shot_groups: need 0 <= head <= medium <= C, got head={h}, medium={m}, "
            f"C={num_classes}; set evaluator head/medium to the class-id cut-offs of the dataset"
        )
    return {"many": ids[:h], "medium": ids[h:m], "few": ids[m:]}


def _group_means(
    per_class: Tensor, groups: Mapping[str, list[int]], name: str
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    means = []
    for group in GROUPS:
        members = groups[group]
        if members:
            out[f"{name}_{group}"] = per_class[members].mean()
            means.append(out[f"{name}_{group}"])
    out[f"{name}_group_avg"] = torch.stack(means).mean()
    return out


class ShotGroupsEvaluator(Evaluator):
    """Report per-class recall, many/medium/few means, MONICA's group average and standard scores.

    Keys: ``acc_{many,medium,few}``, ``acc_group_avg`` (MONICA's "avg": mean of the non-empty
    group means), ``mean_recall`` (balanced accuracy), ``top1``, ``auroc_*`` / ``auprc_*`` /
    ``f1_*`` (per-class one-vs-rest on logits or probabilities, F1 on argmax, each with the same
    groups), and ``class_{acc,auroc,auprc,f1}_{c}`` per class. Absent classes score 0 (MONICA).
    Values are fractions in [0, 1]. States are concatenated (``cat``) and sync across ranks.

    References: MONICA ``utils/log_accuracy.py``.
    """

    name: ClassVar[str] = "shot_groups"
    higher_is_better = True
    # few-shot recall first: it is what a long-tail method sets out to raise
    headline_keys: ClassVar[tuple[str, ...]] = (
        "acc_few",
        "acc_medium",
        "acc_many",
        "acc_group_avg",
    )
    full_state_update = False
    scores: list[Tensor]
    target: list[Tensor]

    def __init__(self, params: ShotGroupsEvaluatorParams, ctx: BuildContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params = params
        num_classes = params.num_classes or ctx.data.num_classes
        if not num_classes:
            raise ComponentError(
                "longtail.shot_groups needs the number of classes: set evaluator num_classes or "
                "use a dataset whose facts() report num_classes"
            )
        self.num_classes = int(num_classes)
        self.groups = shot_groups(
            self.num_classes,
            params.grouping,
            params.head,
            params.medium,
            ctx.data.class_counts,
            params.many_threshold,
            params.few_threshold,
        )
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("target", default=[], dist_reduce_fx="cat")

    def update(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        """Store the batch's class scores and labels."""
        scores = outputs[self.params.logits_key].detach()
        if scores.ndim != 2 or scores.shape[1] != self.num_classes:
            raise ComponentError(
                f"longtail.shot_groups expects {self.params.logits_key} of shape (B, "
                f"{self.num_classes}), got {tuple(scores.shape)}"
            )
        self.scores.append(scores.float())
        self.target.append(batch["label"].detach().long())

    def compute(self) -> dict[str, Tensor]:
        """Return every score of the concatenated outputs."""
        scores = dim_zero_cat(self.scores)
        target = dim_zero_cat(self.target)
        return _compute(scores, target, self.num_classes, self.groups, self.params.auc_score)


def _compute(
    scores: Tensor, target: Tensor, num_classes: int, groups: Mapping[str, list[int]], auc: str
) -> dict[str, Tensor]:
    pred = scores.argmax(dim=1)
    support = torch.bincount(target, minlength=num_classes).float()
    predicted = torch.bincount(pred, minlength=num_classes).float()
    tp = torch.bincount(target[pred == target], minlength=num_classes).float()
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    denom = predicted + support
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    # float64 softmax keeps mathematically tied probabilities tied (float32 breaks some ties)
    auc_input = scores.double().softmax(dim=1) if auc == "probs" else scores
    auroc = torch.zeros(num_classes)
    auprc = torch.zeros(num_classes)
    for c in range(num_classes):  # one-vs-rest, once per evaluation
        positive = target == c
        if 0 < int(positive.sum()) < len(target):
            # rank-transform: torchmetrics squashes raw logits through a sigmoid, whose float32
            # saturation would create ties; ranks keep the exact order (and the ties) instead
            distinct, inverse = torch.unique(auc_input[:, c], return_inverse=True)
            ranked = inverse.float() / max(len(distinct) - 1, 1)
            auroc[c] = binary_auroc(ranked, positive.long())
            auprc[c] = binary_average_precision(ranked, positive.long())
    present = support > 0
    out: dict[str, Tensor] = {
        "top1": (pred == target).float().mean(),
        "mean_recall": recall[present].mean(),
    }
    for name, per_class in (("acc", recall), ("auroc", auroc), ("auprc", auprc), ("f1", f1)):
        out.update(_group_means(per_class, groups, name))
        out.update({f"class_{name}_{c}": per_class[c] for c in range(num_classes)})
    return out
