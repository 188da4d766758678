"""Cross-entropy against the calibrator's soft labels, for training on synthetic FER data.

``synfer.synthetic_fer`` with a ``soft: true`` calibrator keeps an undecided generated image
with the ensemble's mean probability p̄ as ``soft_label`` (spec §2.5); a loss that reads only
``label`` would train it on its intended label y₀ instead. ``synfer.soft_ce`` takes, per sample,

- the target distribution q = ``batch["soft_label"][i]`` when the batch carries soft labels and
  that row sums to more than 0 (``synthetic_fer`` gives agreeing/relabelled and real samples the
  one-hot of their label, undecided ones p̄),
- q = one-hot(``label[i]``) otherwise (no ``soft_label`` in the batch, or an all-zero row),

and returns ``mean_i −Σ_k q_ik · log softmax(z_i)_k``: plain cross-entropy where q is one-hot.
Batches mixed by an augmentation (``label_b``, ``lam``) get ``lam·L(q) + (1 − lam)·L(q_b)``
with q_b from ``soft_label_b`` when present, else one-hot(``label_b``).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from asklepios_sdk import Batch, BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor

from asklepios_synfer.params import SoftCrossEntropyParams

__all__ = ["SoftCrossEntropy", "soft_targets"]


def soft_targets(label: Tensor, soft: Tensor | None, num_classes: int) -> Tensor:
    """Return per-sample target distributions: ``soft`` rows that sum to > 0, else one-hot."""
    hard = F.one_hot(label.long(), num_classes).float()
    if soft is None:
        return hard
    if soft.dim() != 2 or soft.shape != hard.shape:
        raise ComponentError(
            f"synfer.soft_ce: batch['soft_label'] is {tuple(soft.shape)} but the model gives "
            f"{num_classes} logits for {len(label)} samples; give the calibrator members "
            "(synfer.synthetic_fer.calibrator.models[].num_classes) the dataset's classes"
        )
    soft = soft.float()
    return torch.where((soft.sum(dim=1) > 0)[:, None], soft, hard)


class SoftCrossEntropy(Loss):
    """Train on calibrated soft labels where a sample has one, its hard label elsewhere.

    Use it with ``synfer.synthetic_fer`` whose calibrator has ``soft: true``;
    ``core.cross_entropy`` reads only ``label`` and would train an undecided image on y₀.
    """

    def __init__(self, params: SoftCrossEntropyParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits = outputs["logits"]
        log_p = F.log_softmax(logits.float(), dim=1)
        classes = logits.shape[1]

        def loss(label: Tensor, soft: Tensor | None) -> Tensor:
            target = soft_targets(label.to(logits.device), soft, classes).to(log_p.device)
            return -(target * log_p).sum(dim=1)

        total = loss(batch["label"], batch.get("soft_label"))
        if "label_b" in batch and "lam" in batch:
            lam = torch.as_tensor(batch["lam"], dtype=total.dtype, device=total.device)
            total = lam * total + (1 - lam) * loss(batch["label_b"], batch.get("soft_label_b"))
        mean = total.mean()
        return LossOutput(mean, {"soft_ce": mean.detach()})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return logits and a batch whose odd samples carry soft labels (even: none, zeros)."""
        outputs, batch = super().example_inputs(ctx, batch_size)
        logits = outputs["logits"]
        gen = torch.Generator().manual_seed(3)
        soft = torch.rand(logits.shape[0], logits.shape[1], generator=gen).softmax(dim=1)
        soft[::2] = 0
        return outputs, {**batch, "soft_label": soft}
