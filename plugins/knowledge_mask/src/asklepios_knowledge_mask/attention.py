"""Knowledge-boosted attention — a RECONSTRUCTION, not the paper's module (spec §4.3).

The Fundus2Video abstract names "knowledge-boosted attention" as the third use of the knowledge
mask, but the released code has no such layer and the paper's method section was not available.
This adapter only gives the framework a slot for it: it is off unless a config lists it, refused
by the trainer's ``faithful`` mode, and should be replaced by the paper's definition once known.

What it does: on the generator's bottleneck features ``F`` (output of the residual blocks) a
light head predicts a mask ``K̂`` (Conv3×3 → ReLU → Conv1×1 → sigmoid, bilinearly upsampled to the
image), trained with ``λ_K · BCE(K̂, K)``. The attention uses ``M = K`` (ground truth) in training
and ``M = K̂`` at inference, where the real frames are never read; ``M↓`` is ``M`` area-averaged to
the feature size.

* ``spatial_gate`` (default): ``A = σ(Conv1×1([F ; M↓]))``, ``F ← F + γ·(A ⊙ F)``.
* ``cross_attention``: single-head attention with queries from ``F`` and keys/values from
  ``F ⊙ M↓``, ``F ← F + γ·Attn``.

``γ`` is a learnable scalar initialised to 0, so the wrapped generator equals the plain one at
initialisation. Option ``predicted_mask_schedule``: in training the detached ``K̂`` replaces ``K``
with the scheduled-sampling probability of §4.2 (from ``batch['videos_seen']``, which the
adversarial trainer passes), so that training moves towards the inference condition.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_knowledge_mask.generator import (
    FundusVideoGenerator,
    find_generator,
    generate_video,
    sampling_probability,
)
from asklepios_knowledge_mask.params import KnowledgeAttentionParams

__all__ = ["KnowledgeAttention"]


class KnowledgeAttention(Adapter):
    """Modulate generator bottleneck features with the knowledge mask (RECONSTRUCTED).

    Training (module in train mode, ``batch['knowledge_mask']`` present): the ground-truth mask
    drives the attention and ``aux_losses['mask_bce']`` trains the mask head. Inference: only
    ``image`` and ``context`` (or the video length) are read; the predicted mask drives the
    attention. Outputs follow :class:`FundusVideoGenerator` plus ``mask_pred``.
    """

    def __init__(self, params: KnowledgeAttentionParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.gamma = nn.Parameter(torch.zeros(()))
        self.mask_head: nn.Module | None = None
        self.gate: nn.Module | None = None
        self.query: nn.Module | None = None
        self.key: nn.Module | None = None
        self.value: nn.Module | None = None

    def wrap(self, model: nn.Module) -> nn.Module:
        """Attach to the model holding a ``knowledge_mask.generator`` and size the layers."""
        generator = find_generator(model)
        channels = generator.feature_dim
        p = self.params
        self.model = model
        self.mask_head = nn.Sequential(
            nn.Conv2d(channels, p.head_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(p.head_channels, 1, 1),
        )
        if p.mode == "spatial_gate":
            self.gate = nn.Conv2d(channels + 1, 1, 1)
        else:
            dim = p.attention_dim or max(channels // 8, 1)
            self.query = nn.Conv2d(channels, dim, 1)
            self.key = nn.Conv2d(channels, dim, 1)
            self.value = nn.Conv2d(channels, channels, 1)
        device = next(generator.parameters()).device
        self.to(device)
        return self

    @property
    def generator(self) -> FundusVideoGenerator:
        """The wrapped sliding-window generator."""
        return find_generator(self.model)

    def _attend(self, feats: Tensor, mask: Tensor) -> Tensor:
        small = F.interpolate(mask, size=feats.shape[-2:], mode="area")
        if self.gate is not None:
            gate = torch.sigmoid(self.gate(torch.cat([feats, small], dim=1)))
            return feats + self.gamma * (gate * feats)
        assert self.query is not None and self.key is not None and self.value is not None
        masked = feats * small
        q = self.query(feats).flatten(2)  # (B, d, N)
        k = self.key(masked).flatten(2)
        v = self.value(masked).flatten(2)  # (B, C, N)
        weights = torch.softmax(q.transpose(1, 2) @ k / q.shape[1] ** 0.5, dim=-1)  # (B, N, N)
        out = (v @ weights.transpose(1, 2)).view_as(feats)
        return feats + self.gamma * out

    def _step(
        self, cf: Tensor, context: Tensor, mask: Tensor | None, use_predicted: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        head = self.mask_head
        if head is None:
            raise ComponentError("knowledge_mask.attention: call wrap(model) before forward")
        predicted: list[Tensor] = []

        def hook(feats: Tensor) -> Tensor:
            logits = head(feats)
            k_hat = torch.sigmoid(F.interpolate(logits, size=cf.shape[-2:], mode="bilinear"))
            predicted.append(k_hat)
            if mask is None or use_predicted:
                return self._attend(feats, k_hat if mask is None else k_hat.detach())
            return self._attend(feats, mask)

        out, bottleneck = self.generator.step(cf, context, feature_hook=hook)
        return out, bottleneck, predicted[0]

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        cf = batch["image"]
        mask = batch.get("knowledge_mask") if self.training else None
        if "context" in batch:
            use_predicted = False
            if mask is not None and self.params.predicted_mask_schedule:
                chance = sampling_probability(int(batch.get("videos_seen", 0)))
                use_predicted = float(torch.rand(())) < chance
            out, bottleneck, k_hat = self._step(cf, batch["context"], mask, use_predicted)
            result: dict[str, Any] = {
                "logits": out,
                "features": bottleneck.mean(dim=(2, 3)),
                "mask_pred": k_hat,
            }
            if mask is not None:
                bce = F.binary_cross_entropy(k_hat.clamp(1e-6, 1 - 1e-6), mask)
                result["aux_losses"] = {"mask_bce": self.params.mask_weight * bce}
            return result

        def step_fn(image: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
            out, bottleneck, _ = self._step(image, context, None)
            return out, bottleneck

        num_frames = self.generator.num_frames_of(batch)
        video, features = generate_video(step_fn, cf, num_frames)
        return {"video": video, "logits": video, "features": features}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return a tiny training step batch with a knowledge mask."""
        if hasattr(self, "model"):
            batch = self.generator.example_batch(ctx, batch_size)
        else:
            gen = torch.Generator().manual_seed(0)
            batch = {
                "image": torch.rand(batch_size, 3, 32, 32, generator=gen) * 2 - 1,
                "context": torch.rand(batch_size, 3, 32, 32, generator=gen) * 2 - 1,
            }
        size = batch["image"].shape[-2:]
        gen = torch.Generator().manual_seed(1)
        batch["knowledge_mask"] = (torch.rand(batch_size, 1, *size, generator=gen) > 0.5).float()
        return batch
