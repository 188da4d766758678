"""RSG backbone: a timm ResNeXt-50 with the RSG module after layer3 and a cosine head.

The RSG module works on *detached* layer-3 feature maps F (so its terms train only the RSG
parameters) and returns the class-aware center and pair-contrastive terms (CESC) as
``aux_losses``, which the engine adds to the configured loss (MONICA: LDAM-DRW).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_longtail.adapters import NormedLinear
from asklepios_longtail.params import RSGResNeXtParams

__all__ = ["RSGModule", "RSGResNeXt"]


class _ResNetTrunk(Protocol):
    """What RSG reads of a timm ResNet-family model (checked by name when it is built)."""

    conv1: nn.Module
    bn1: nn.Module
    act1: nn.Module
    maxpool: nn.Module
    layer1: nn.Module
    layer2: nn.Module
    layer3: nn.Module
    layer4: nn.Module
    global_pool: nn.Module
    feature_info: list[dict[str, Any]]
    num_features: int


class RSGModule(nn.Module):
    """Compute RSG's center term and pair-contrastive term on layer-3 feature maps.

    Center: γ_i = softmax_k(pool(F_i)·A_{y_i,:,k} + b_{y_i,k}), then
    (1/B) Σ_i Σ_k γ_ik ‖F_i − μ_{y_i,k}‖² with the centers broadcast over space.
    Contrast: sample i is paired with i + B/2; the two maps are concatenated along channels
    → 1×1 conv → ReLU → 3×3 conv → global pool → linear(2), with CE against "same class?".
    """

    def __init__(self, channels: int, num_classes: int, n_center: int, contrastive_dim: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, n_center, channels) * 0.01)
        self.assign_weight = nn.Parameter(torch.randn(num_classes, channels, n_center) * 0.01)
        self.assign_bias = nn.Parameter(torch.zeros(num_classes, n_center))
        self.contrast = nn.Sequential(
            nn.Conv2d(2 * channels, contrastive_dim, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(contrastive_dim, contrastive_dim, kernel_size=3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(contrastive_dim, 2),
        )

    def center_term(self, maps: Tensor, labels: Tensor) -> Tensor:
        """Return the soft-assigned distance of each map to its class centers."""
        pooled = maps.mean(dim=(2, 3))  # (B, Ch)
        scores = torch.einsum("bc,bck->bk", pooled, self.assign_weight[labels])
        gamma = (scores + self.assign_bias[labels]).softmax(dim=1)  # (B, K)
        centers = self.centers[labels]  # (B, K, Ch)
        diff = maps[:, None] - centers[:, :, :, None, None]  # (B, K, Ch, H, W)
        distance = diff.pow(2).sum(dim=(2, 3, 4))  # (B, K)
        return (gamma * distance).sum(dim=1).mean()

    def contrast_term(self, maps: Tensor, labels: Tensor) -> Tensor:
        """Return the pair-contrastive CE of sample i against sample i + B/2."""
        half = maps.shape[0] // 2
        if half == 0:
            return maps.new_zeros(())
        pairs = torch.cat([maps[:half], maps[half : 2 * half]], dim=1)
        same = (labels[:half] == labels[half : 2 * half]).long()
        return F.cross_entropy(self.contrast(pairs), same)

    def forward(self, maps: Tensor, labels: Tensor) -> Tensor:
        return self.center_term(maps, labels) + self.contrast_term(maps, labels)


class RSGResNeXt(Backbone):
    """Build RSG's backbone: ResNeXt-50 trunk, RSG module after layer3, cosine head.

    In training (with labels) ``aux_losses`` holds ``rsg_cesc`` = 0.1·(center + contrast) on the
    detached layer-3 maps; evaluation runs without the module. Random init (weights: a local
    file through the config's ``weights:``; never a download). Pair with ``longtail.ldam``
    (s 30, DRW) and ``longtail.switch`` (→ effective_number at int(0.8E)). The feature-transfer
    (MV) term is not implemented: with MONICA's E = 50 and threshold 160 it is never active.

    References: Wang et al., CVPR 2021 (RSG). MONICA ``models/resnet.py``, ``models/RSG.py``.
    """

    trunk: _ResNetTrunk

    def __init__(self, params: RSGResNeXtParams, ctx: BuildContext) -> None:
        super().__init__()
        import timm

        self.params = params
        num_classes = params.num_classes or ctx.data.num_classes
        if not num_classes:
            raise ComponentError("longtail.rsg_resnext needs the number of classes")
        trunk = timm.create_model(
            params.model_name,
            pretrained=False,
            num_classes=0,
            in_chans=params.in_chans or ctx.data.in_channels or 3,
        )
        for name in ("conv1", "bn1", "act1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            if not hasattr(trunk, name):
                raise ComponentError(
                    f"longtail.rsg_resnext: timm model {params.model_name!r} has no {name}; use a "
                    "ResNet-family model (resnext50_32x4d, resnet50, resnet10t, ...)"
                )
        self.trunk = cast(_ResNetTrunk, trunk)
        channels = self.trunk.feature_info[3]["num_chs"]
        self.rsg = RSGModule(channels, int(num_classes), params.n_center, params.contrastive_dim)
        self.feature_dim = int(self.trunk.num_features)
        self.head = NormedLinear(self.feature_dim, int(num_classes))

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        t = self.trunk
        x = t.maxpool(t.act1(t.bn1(t.conv1(batch["image"]))))
        maps = t.layer3(t.layer2(t.layer1(x)))
        features = t.global_pool(t.layer4(maps))
        out = {"logits": self.head(features), "features": features}
        if self.training and "label" in batch:
            cesc = self.rsg(maps.detach(), batch["label"])
            out["aux_losses"] = {"rsg_cesc": self.params.cesc_weight * cesc}
        return out

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the cosine head with a fresh one of ``num_classes`` outputs."""
        device = self.head.weight.device
        self.head = NormedLinear(self.feature_dim, num_classes).to(device)
