"""pix2pixHD multi-scale PatchGAN and Fundus2Video's knowledge-aware adversarial terms (§5).

"Knowledge-aware discriminators" are the same multi-scale discriminator applied to the
mask-multiplied pair ``[x ; Y] ⊙ K`` (K broadcast over all 6 channels).

References:
    Wang et al., pix2pixHD (``MultiscaleDiscriminator``, ``NLayerDiscriminator``, ``GANLoss``),
    CVPR 2018; Zhang et al., "Fundus2Video", MICCAI 2024, arXiv 2408.15217.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, BuildContext
from torch import Tensor, nn

from asklepios_knowledge_mask.params import KnowledgeAwareDiscriminatorParams

__all__ = [
    "KnowledgeAwareDiscriminator",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "feature_matching",
    "lsgan",
]

Scales = list[list[Tensor]]


class NLayerDiscriminator(nn.Module):
    """PatchGAN with intermediate outputs: kernel 4, padding 2, InstanceNorm, LeakyReLU 0.2."""

    def __init__(self, input_nc: int = 6, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        kw, padw = 4, math.ceil((4 - 1) / 2)
        blocks: list[list[nn.Module]] = [
            [nn.Conv2d(input_nc, ndf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2)]
        ]
        nf = ndf
        for _ in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            blocks.append(
                [
                    nn.Conv2d(nf_prev, nf, kw, stride=2, padding=padw),
                    nn.InstanceNorm2d(nf, affine=False),
                    nn.LeakyReLU(0.2),
                ]
            )
        nf_prev, nf = nf, min(nf * 2, 512)
        blocks.append(
            [
                nn.Conv2d(nf_prev, nf, kw, stride=1, padding=padw),
                nn.InstanceNorm2d(nf, affine=False),
                nn.LeakyReLU(0.2),
            ]
        )
        blocks.append([nn.Conv2d(nf, 1, kw, stride=1, padding=padw)])
        self.blocks = nn.ModuleList(nn.Sequential(*b) for b in blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return every block's output; the last is the patch prediction map."""
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` PatchGANs, each on an input average-pooled once more than the previous one."""

    def __init__(self, input_nc: int = 6, ndf: int = 64, n_layers: int = 3, num_D: int = 2) -> None:
        super().__init__()
        self.num_D, self.n_layers = num_D, n_layers
        self.scales = nn.ModuleList(
            NLayerDiscriminator(input_nc, ndf, n_layers) for _ in range(num_D)
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)

    def forward(self, x: Tensor) -> Scales:
        """Return, per scale (full resolution first), the list of block outputs."""
        result = []
        for index, net in enumerate(self.scales):
            result.append(net(x))
            if index != self.num_D - 1:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return result


def lsgan(preds: Scales, target_is_real: bool) -> Tensor:
    """Return the LSGAN loss ``Σ_scales MSE(D_last, 1 or 0)`` on each scale's last map."""
    value = preds[0][-1].new_zeros(())
    for scale in preds:
        target = torch.full_like(scale[-1], 1.0 if target_is_real else 0.0)
        value = value + F.mse_loss(scale[-1], target)
    return value


def feature_matching(fake: Scales, real: Scales, n_layers: int, weight: float = 10.0) -> Tensor:
    """Return ``Σ_scales Σ_j (1/num_D)(4/(n_layers+1)) λ_feat L1(D_j(fake), D_j(real))``.

    The last map (the prediction) is excluded; real features are detached.
    """
    num_d = len(fake)
    factor = (1.0 / num_d) * (4.0 / (n_layers + 1)) * weight
    value = fake[0][0].new_zeros(())
    for scale_f, scale_r in zip(fake, real, strict=True):
        for f, r in zip(scale_f[:-1], scale_r[:-1], strict=True):
            value = value + factor * F.l1_loss(f, r.detach())
    return value


class KnowledgeAwareDiscriminator(Backbone):
    """Judge (CF, frames) pairs with a multi-scale PatchGAN, plain or knowledge-masked.

    ``forward(batch)``: ``batch['image']`` is the 6-channel pair ``[x ; Y]``; with
    ``batch['knowledge_mask']`` the pair is multiplied by it first (the knowledge-aware use).
    Returns ``logits`` (the full-scale patch map), ``features`` (the last intermediate map of the
    full scale averaged over positions) and ``scales`` (every block output of every scale).
    """

    def __init__(self, params: KnowledgeAwareDiscriminatorParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        p = self.params
        self.net = MultiscaleDiscriminator(p.input_nc, p.ndf, p.n_layers, p.num_D)
        self.feature_dim = min(p.ndf * 2**p.n_layers, 512)

    def discriminate(self, pair: Tensor, mask: Tensor | None = None) -> Scales:
        """Return the per-scale outputs for ``pair``, multiplied by ``mask`` when given."""
        return self.net(pair if mask is None else pair * mask)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        scales = self.discriminate(batch["image"], batch.get("knowledge_mask"))
        return {
            "logits": scales[0][-1],
            "features": scales[0][-2].mean(dim=(2, 3)),
            "scales": scales,
        }

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return a tiny batch of 6-channel pairs and knowledge masks."""
        size = (ctx.data.image_size or (32, 32))[0]
        gen = torch.Generator().manual_seed(0)
        return {
            "image": torch.rand(batch_size, self.params.input_nc, size, size, generator=gen) * 2
            - 1,
            "knowledge_mask": (torch.rand(batch_size, 1, size, size, generator=gen) > 0.5).float(),
        }
