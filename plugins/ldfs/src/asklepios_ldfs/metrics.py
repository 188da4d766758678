"""Evaluator ``ldfs.domain_accuracy``: top-1 accuracy per domain and the means."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from asklepios_sdk import BuildContext, ComponentError, Evaluator
from torch import Tensor

from asklepios_ldfs.params import DomainAccuracyParams

__all__ = ["DomainAccuracy", "domain_counts"]


def domain_counts(
    logits: Tensor, labels: Tensor, domains: Tensor, num_domains: int
) -> tuple[Tensor, Tensor]:
    """Return per-domain ``(correct, total)`` counts of top-1 predictions (vectorised)."""
    hits = (logits.argmax(dim=-1) == labels).long()
    correct = torch.bincount(domains, weights=hits.float(), minlength=num_domains)
    total = torch.bincount(domains, minlength=num_domains).float()
    return correct[:num_domains], total[:num_domains]


class DomainAccuracy(Evaluator):
    """Report top-1 accuracy per domain, their mean and the mean over unseen domains.

    Keys: one per domain name seen in the evaluated split, ``mean`` over those, and
    ``unseen_mean`` over the non-source ones (when any was seen).
    """

    name = "domain_accuracy"
    higher_is_better = True
    headline_keys = ("mean", "unseen_mean", "*")  # the means first, then every domain
    correct: Tensor
    total: Tensor

    def __init__(self, params: DomainAccuracyParams, ctx: BuildContext) -> None:
        super().__init__()
        names = params.domains or list(ctx.data.extras.get("domains") or ["source"])
        self.domain_names = tuple(names)
        self.domain_key = params.domain_key
        self.source = params.source
        size = len(self.domain_names)
        self.add_state("correct", default=torch.zeros(size), dist_reduce_fx="sum")
        self.add_state("total", default=torch.zeros(size), dist_reduce_fx="sum")

    def update(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        logits, labels = outputs["logits"], batch["label"]
        domains = batch.get(self.domain_key)
        if domains is None:
            domains = torch.full_like(labels, self.source)
        domains = domains.long().to(logits.device)
        if domains.numel() and int(domains.max()) >= len(self.domain_names):
            raise ComponentError(
                f"ldfs.domain_accuracy: domain id {int(domains.max())} but only "
                f"{len(self.domain_names)} names {self.domain_names}; set 'domains'"
            )
        correct, total = domain_counts(
            logits, labels.to(logits.device), domains, len(self.domain_names)
        )
        self.correct += correct.to(self.correct.device)
        self.total += total.to(self.total.device)

    def compute(self) -> dict[str, Tensor]:
        seen = self.total > 0
        acc = self.correct / self.total.clamp_min(1)
        out = {name: acc[i] for i, name in enumerate(self.domain_names) if bool(seen[i])}
        if bool(seen.any()):
            out["mean"] = acc[seen].mean()
        unseen = seen.clone()
        unseen[self.source] = False
        if bool(unseen.any()):
            out["unseen_mean"] = acc[unseen].mean()
        return out
