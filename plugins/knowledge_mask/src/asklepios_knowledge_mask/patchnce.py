"""Mask-enhanced multi-layer PatchNCE (Fundus2Video §6) with CUT's PatchSampleF heads.

The generator's encoder features of the mask-multiplied inputs ``[u ; u] ⊙ K`` are sampled at the
same random positions for the query (generated frames) and the key (CF image, or real frames), sent
through a per-layer 2-layer MLP, L2-normalised and contrasted patch by patch with InfoNCE:

.. math::

    \\ell_s = -\\log \\frac{e^{q_s \\cdot k_s / \\tau}}
        {e^{q_s \\cdot k_s / \\tau} + \\sum_{s'} e^{\\tilde{n}_{s s'} / \\tau}},
    \\qquad \\tilde{n}_{s s'} = q_s \\cdot k_{s'}\\ (s' \\ne s),\\ \\tilde{n}_{ss} = -10

``G_NCE = ½ [NCE(x → Ŷ) + NCE(Y → Ŷ)]`` with ``NCE = λ_NCE · mean_l mean_s ℓ``.

References:
    Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation" (CUT), ECCV 2020;
    Zhang et al., "Fundus2Video", MICCAI 2024, arXiv 2408.15217.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor, nn

from asklepios_knowledge_mask.params import MaskedPatchNCEParams

__all__ = [
    "MaskedPatchNCE",
    "PatchSampleF",
    "info_nce",
    "l2_normalize",
]

Encoder = Callable[[Tensor, Sequence[int]], list[Tensor]]


def l2_normalize(x: Tensor, eps: float = 1e-7) -> Tensor:
    """Divide each row by the L2 norm of the row plus ``eps`` (Fundus2Video's ``Normalize(2)``).

    ``x / ‖x + 1e-7‖``: the original adds ``1e-7`` inside the norm ("to avoid sqrting 0s"), so an
    all-zero row (masked inputs through zero-bias heads give them) maps to zero with a finite
    gradient.
    """
    return x / (x + eps).pow(2).sum(dim=1, keepdim=True).sqrt()


def info_nce(
    feat_q: Tensor, feat_k: Tensor, batch_size: int, tau: float = 0.07, diagonal: float = -10.0
) -> Tensor:
    """Return the per-patch InfoNCE loss with negatives from the same image (``(B·P,)``).

    Args:
        feat_q: queries ``(B·P, D)``, image-major.
        feat_k: keys at the same positions, ``(B·P, D)``; detached here.
        batch_size: ``B``: negatives come from the same image only.
        tau: temperature ``nce_T``.
        diagonal: value put on the positive's own slot among the negatives, before scaling.
    """
    feat_k = feat_k.detach()
    dim = feat_q.shape[1]
    l_pos = (feat_q * feat_k).sum(dim=1, keepdim=True)
    q = feat_q.view(batch_size, -1, dim)
    k = feat_k.view(batch_size, -1, dim)
    npatches = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))
    eye = torch.eye(npatches, dtype=torch.bool, device=q.device)[None]
    l_neg = l_neg.masked_fill(eye, diagonal).view(-1, npatches)
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target, reduction="none")


class PatchSampleF(nn.Module):
    """CUT's ``PatchSampleF`` (``mlp_sample``): sample positions, per-layer MLP, L2-normalise."""

    def __init__(self, channels: Sequence[int], nc: int = 256, init_gain: float = 0.02) -> None:
        super().__init__()
        self.channels = tuple(channels)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in channels
        )
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, init_gain)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        feats: Sequence[Tensor],
        num_patches: int,
        patch_ids: Sequence[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Return the projected patches ``(B·P, nc)`` per layer and the positions used."""
        if len(feats) != len(self.mlps):
            raise ComponentError(
                f"knowledge_mask.patchnce: got {len(feats)} feature maps for {len(self.mlps)} "
                "projection heads; 'channels' must list one width per NCE layer"
            )
        out, ids = [], []
        for index, (feat, mlp) in enumerate(zip(feats, self.mlps, strict=True)):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)
            if patch_ids is not None:
                pid = patch_ids[index]
            else:
                count = min(num_patches, flat.shape[1])
                pid = torch.randperm(flat.shape[1], generator=generator)[:count].to(flat.device)
            sample = flat[:, pid, :].flatten(0, 1)
            if sample.shape[1] != self.channels[index]:
                raise ComponentError(
                    f"knowledge_mask.patchnce: layer {index} has {sample.shape[1]} channels, its "
                    f"head expects {self.channels[index]}; set 'channels' to the generator's widths"
                )
            out.append(l2_normalize(mlp(sample)))
            ids.append(pid)
        return out, ids


class MaskedPatchNCE(Loss):
    """Contrast mask-multiplied encoder patches of generated and source frames (PatchNCE).

    ``forward(outputs, batch)``: ``outputs['logits']`` are the generated frames ``Ŷ``
    ``(B, 3, H, W)`` and ``outputs['encoder']`` the generator's layer access
    (``encode(x, layers) -> list[Tensor]``); ``batch['image']`` is the CF image ``x``,
    ``batch['target']`` the real frames ``Y`` and ``batch['knowledge_mask']`` ``K`` (all ones when
    absent). In ``faithful`` mode the projection heads never change (the original zeroes their
    gradients before stepping).
    """

    def __init__(self, params: MaskedPatchNCEParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        p = self.params
        if len(p.nce_layers) != len(p.channels):
            raise ComponentError(
                f"knowledge_mask.patchnce: nce_layers {p.nce_layers} and channels {p.channels} "
                "must have the same length"
            )
        self.head = PatchSampleF(p.channels, p.nc)
        if p.mode == "faithful":
            self.head.requires_grad_(False)

    def head_parameters(self) -> list[nn.Parameter]:
        """Return the projection-head parameters an optimiser should update (none if faithful)."""
        return [q for q in self.head.parameters() if q.requires_grad]

    def nce(self, encode: Encoder, src: Tensor, fake: Tensor, mask: Tensor) -> Tensor:
        """Return ``λ_NCE · mean_l mean_s ℓ`` for ``src → fake`` on mask-multiplied inputs."""
        p = self.params
        layers = list(p.nce_layers)
        feat_q = encode(torch.cat([fake, fake], dim=1) * mask, layers)
        feat_k = encode(torch.cat([src, src], dim=1) * mask, layers)
        pool_k, ids = self.head(feat_k, p.num_patches)
        pool_q, _ = self.head(feat_q, p.num_patches, ids)
        total = fake.new_zeros(())
        for q, k in zip(pool_q, pool_k, strict=True):
            total = total + info_nce(q, k, fake.shape[0], p.tau).mean() * p.weight
        return total / len(layers)

    def forward(self, outputs: Mapping[str, Any], batch: Mapping[str, Any]) -> LossOutput:
        fake = outputs["logits"]
        encode = outputs.get("encoder")
        if encode is None:
            raise ComponentError(
                "knowledge_mask.patchnce needs outputs['encoder'] (the generator's encode(x, "
                "layers)); use it through the knowledge_mask.adversarial trainer"
            )
        encode = getattr(encode, "encode", encode)
        mask = batch.get("knowledge_mask")
        if mask is None:
            mask = torch.ones_like(fake[:, :1])
        src_term = self.nce(encode, batch["image"], fake, mask)
        terms = {"nce_cf": src_term}
        if self.params.paired_real:
            terms["nce_real"] = self.nce(encode, batch["target"], fake, mask)
            total = 0.5 * (terms["nce_cf"] + terms["nce_real"])
        else:
            total = src_term
        return LossOutput(total, terms)

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 2
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return a tiny generator, its generated frames and a batch matching ``channels``."""
        from asklepios_knowledge_mask.generator import GlobalGenerator

        p = self.params
        ngf = p.channels[1] // 2 if len(p.channels) > 1 else 8
        netG = GlobalGenerator(ngf=ngf, n_downsampling=4, n_blocks=1)
        gen = torch.Generator().manual_seed(0)
        image = torch.rand(batch_size, 3, 32, 32, generator=gen) * 2 - 1
        target = torch.rand(batch_size, 3, 32, 32, generator=gen) * 2 - 1
        fake = (torch.rand(batch_size, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
        mask = (torch.rand(batch_size, 1, 32, 32, generator=gen) > 0.5).float()
        batch = {"image": image, "target": target, "knowledge_mask": mask}
        return {"logits": fake, "encoder": netG}, batch
