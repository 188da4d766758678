"""PanDerm's segmentation model: the ViT encoder, a 4-level neck and mmseg's UPerHead (§6.5).

The patch tokens after blocks ``[7, 11, 15, 23]`` (0-based) pass the encoder's final LayerNorm,
become ``[B, D, h, w]`` maps and are rescaled by ``x4`` (ConvT 2x2 s2 -> BN -> GELU -> ConvT),
``x2`` (ConvT), ``x1`` and ``x0.5`` (max-pool 2). UPerHead: pyramid pooling (scales 1, 2, 3, 6)
on the coarsest level, lateral 1x1 convs, top-down sums, 3x3 FPN convs, fusion, a 1x1
classifier; logits are upsampled bilinearly to the input. ConvModules are conv (no bias) -> BN
-> ReLU. The repo's SyncBN is BatchNorm here (the engine converts it under DDP).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError, example_batch
from torch import Tensor, nn

from asklepios_panderm.params import PanDermUperNetParams
from asklepios_panderm.vit import build_encoder, layer_id

__all__ = ["PanDermUperNet", "UPerHead"]


def _conv_module(in_ch: int, out_ch: int, kernel: int) -> nn.Sequential:
    """Return mmcv's ConvModule: conv without bias, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UPerHead(nn.Module):
    """mmseg's ``UPerHead``: PPM on the last level, FPN top-down fusion, 1x1 classifier."""

    def __init__(
        self,
        in_channels: list[int],
        channels: int,
        pool_scales: list[int],
        num_classes: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        last = in_channels[-1]
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(scale), _conv_module(last, channels, 1))
            for scale in pool_scales
        )
        self.bottleneck = _conv_module(last + len(pool_scales) * channels, channels, 3)
        self.lateral_convs = nn.ModuleList(_conv_module(c, channels, 1) for c in in_channels[:-1])
        self.fpn_convs = nn.ModuleList(
            _conv_module(channels, channels, 3) for _ in in_channels[:-1]
        )
        self.fpn_bottleneck = _conv_module(len(in_channels) * channels, channels, 3)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.conv_seg = nn.Conv2d(channels, num_classes, 1)

    @staticmethod
    def _resize(x: Tensor, size: Any) -> Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        top = inputs[-1]
        pooled = [self._resize(m(top), top.shape[2:]) for m in self.psp_modules]
        laterals = [conv(inputs[i]) for i, conv in enumerate(self.lateral_convs)]
        laterals.append(self.bottleneck(torch.cat([top, *pooled], dim=1)))
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + self._resize(laterals[i], laterals[i - 1].shape[2:])
        outs = [conv(laterals[i]) for i, conv in enumerate(self.fpn_convs)]
        outs.append(laterals[-1])
        size = outs[0].shape[2:]
        outs = [outs[0]] + [self._resize(o, size) for o in outs[1:]]
        return self.conv_seg(self.dropout(self.fpn_bottleneck(torch.cat(outs, dim=1))))


class PanDermUperNet(Backbone):
    """Segment with the PanDerm encoder, a 4-scale neck on blocks 7/11/15/23 and UPerHead.

    Returns ``{"logits": [B, K, H, W]}`` at the input size. ``panderm.checkpoint`` (target
    ``panderm``) loads the released encoder; the neck and head start from random init.
    """

    encoder: Any

    def __init__(self, params: PanDermUperNetParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.encoder = build_encoder(params, pool="cls")
        depth = len(self.encoder.blocks)
        bad = [i for i in params.out_indices if i >= depth]
        if bad:
            raise ComponentError(
                f"panderm.upernet: out_indices {bad} are beyond the encoder's {depth} blocks; "
                f"set out_indices to 4 block indices below {depth}"
            )
        if params.patch_size != 16:
            raise ComponentError("panderm.upernet: the neck is PanDerm's patch-16 neck")
        dim = int(self.encoder.cls_token.shape[-1])
        self.out_indices = list(params.out_indices)
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, 2, 2),
            nn.BatchNorm2d(dim),
            nn.GELU(),
            nn.ConvTranspose2d(dim, dim, 2, 2),
        )
        self.fpn2 = nn.ConvTranspose2d(dim, dim, 2, 2)
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(2, 2)
        self.decode_head = UPerHead(
            [dim] * 4, params.channels, list(params.pool_scales), params.num_classes, params.dropout
        )
        self.num_layers = depth

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        images = batch["image"]
        levels = self.encoder.intermediates(images, self.out_indices)
        necks = (self.fpn1, self.fpn2, self.fpn3, self.fpn4)
        levels = [op(x) for op, x in zip(necks, levels, strict=True)]
        logits = self.decode_head(levels)
        logits = F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)
        return {"logits": logits}

    def layer_id(self, name: str) -> int:
        """Return the layer-decay id of parameter ``name`` (neck and head: the top id)."""
        return layer_id(name, self.num_layers)

    def no_weight_decay(self) -> set[str]:
        """Return the parameter names exempt from weight decay by name."""
        return {"encoder.pos_embed", "encoder.cls_token"}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return images of the model's input size with a lesion mask."""
        size = self.params.img_size
        facts = ctx.data.replace(
            task="segmentation", num_classes=self.params.num_classes, image_size=(size, size)
        )
        return example_batch(ctx.replace(data=facts), batch_size)
