"""Params of the shot-group evaluator.

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "ShotGroupsEvaluatorParams",
]


class ShotGroupsEvaluatorParams(Params):
    """Params of :class:`~asklepios_longtail.metrics.ShotGroupsEvaluator`."""

    grouping: Literal["index", "counts"] = Field(
        "index",
        description="index: MONICA's class-id cut-offs head/medium; counts: >many_threshold / "
        "few_threshold..many_threshold / <few_threshold training images (ImageNet-LT style).",
    )
    head: int | None = Field(
        None, ge=0, description="Classes [0, head) are 'many' (default: round(C/3))."
    )
    medium: int | None = Field(
        None, ge=0, description="Classes [head, medium) are 'medium' (default: round(2C/3))."
    )
    many_threshold: int = Field(100, description="counts grouping: many if n_c > this.")
    few_threshold: int = Field(20, description="counts grouping: few if n_c < this.")
    auc_score: Literal["logits", "probs"] = Field(
        "logits", description="Scores of AUROC/AUPRC: raw logits (MONICA) or softmax probabilities."
    )
    num_classes: int | None = Field(None, ge=2, description="C; default: the dataset's.")
    logits_key: str = Field("logits", description="Model output holding the class scores.")
