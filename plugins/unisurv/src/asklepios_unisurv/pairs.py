"""Duration-sorted partners for the discordance term (sorted_pairs wrapper, pairwise trainer).

UniSurv ``modules/dataset.py``: the training set is sorted by time and item ``a`` comes with a
partner ``b`` drawn uniformly from the subjects after it (``t_b >= t_a``), or from all subjects for
the last one. Both go through the network; the discordance term of ``unisurv.mmv`` uses the pair.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, EmptyParams
from asklepios_sdk.components import (
    Batch,
    Dataset,
    DatasetWrapper,
    LossOutput,
    StepContext,
    Trainer,
)

from asklepios_unisurv.margins import split_survival

__all__ = [
    "PAIRS_FACT",
    "PairwiseTrainer",
    "SortedPairsWrapper",
]

PAIRS_FACT = "unisurv.sorted_pairs"
"""Key of ``DataFacts.extras`` telling the loss that training samples carry a partner."""

PREFIX = "partner_"


class _PairSplit(torch.utils.data.Dataset):
    def __init__(self, inner: Any, times: np.ndarray) -> None:
        self.inner = inner
        self.times = times
        self.events = getattr(inner, "events", None)
        self.order = np.argsort(times, kind="stable")
        self.rank = np.empty_like(self.order)
        self.rank[self.order] = np.arange(len(self.order))

    def __len__(self) -> int:
        return len(self.inner)

    def partner_of(self, index: int, draw: float) -> int:
        """Return the partner of ``index`` for a uniform ``draw`` in [0, 1)."""
        n = len(self.order)
        start = int(self.rank[index]) + 1
        if start >= n:
            return int(self.order[min(int(draw * n), n - 1)])
        return int(self.order[start + min(int(draw * (n - start)), n - start - 1)])

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.inner[index])
        partner = self.inner[self.partner_of(index, float(torch.rand(())))]
        for key, value in partner.items():
            sample[PREFIX + key] = value
        return sample


class SortedPairsWrapper(DatasetWrapper):
    """Pair every training sample with a partner of later time, for the discordance term.

    Every training sample gains the fields of a partner with a later (or equal) time, under keys
    ``partner_*``. Val and test splits are unchanged. The facts gain
    ``extras["unisurv.sorted_pairs"] = True``.
    """

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        del params, ctx

    def split(self, name: str) -> torch.utils.data.Dataset:
        inner = self.inner.split(name)
        if name != "train":
            return inner
        times, _ = split_survival(inner)
        return _PairSplit(inner, times)

    def facts(self) -> DataFacts:
        facts = self.inner.facts()
        return facts.replace(extras={**facts.extras, PAIRS_FACT: True})

    def wrap(self, inner: Dataset) -> Dataset:
        if inner.facts().task != "survival":
            raise ComponentError("unisurv.sorted_pairs wraps survival datasets only")
        return super().wrap(inner)


def _partner_batch(batch: Batch) -> Batch:
    partner = {k[len(PREFIX) :]: v for k, v in batch.items() if k.startswith(PREFIX)}
    if "image" not in partner:
        raise ComponentError(
            "unisurv.pairwise: the training batch has no 'partner_image'; add "
            "{type: unisurv.sorted_pairs} to data.wrappers"
        )
    return partner


class PairwiseTrainer(Trainer):
    """Train on duration-sorted pairs: both members forward, ranking term on the pair.

    The anchor and its partner go through the model in one pass: the batch and its ``partner_*``
    fields are concatenated along the batch axis, so dropout and normalisation see both as one
    batch; ``outputs["partner_logits"]`` feeds the discordance term.

    Raises:
        ComponentError: the training samples carry no partners (no ``unisurv.sorted_pairs``).
    """

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        del params
        if not ctx.data.extras.get(PAIRS_FACT):
            raise ComponentError(
                "trainer unisurv.pairwise needs partners: add {type: unisurv.sorted_pairs} to "
                "data.wrappers"
            )

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        partner = _partner_batch(batch)
        size = len(batch["image"])
        joint = {
            key: torch.cat([value, partner[key]])
            for key, value in batch.items()
            if key in partner and isinstance(value, torch.Tensor)
        }
        with step.autocast():
            out = step.model(joint)
            outputs = {k: v[:size] for k, v in out.items() if isinstance(v, torch.Tensor)}
            outputs["partner_logits"] = out["logits"][size:]
            if "aux_losses" in out:
                outputs["aux_losses"] = out["aux_losses"]
            loss = step.loss(outputs, batch)
        step.backward(loss.total)
        step.step()
        return loss
