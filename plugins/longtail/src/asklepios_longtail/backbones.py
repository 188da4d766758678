"""Multi-expert ResNet of SADE (also serves RIDE): shared trunk, per-expert last stages.

The backbone returns ``logits`` (mean of the experts' scaled cosine logits, what evaluation
uses), ``expert_logits`` (K × B × C, what ``longtail.sade`` and ``longtail.ride`` read),
``features`` (mean of the experts' pooled features) and ``expert_features``.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_longtail.adapters import NormedLinear
from asklepios_longtail.params import ExpertResNetParams

__all__ = ["ExpertResNet", "init_expert_resnet"]


def _make_layer(inplanes: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    from torchvision.models.resnet import Bottleneck

    out = planes * Bottleneck.expansion
    downsample = None
    if stride != 1 or inplanes != out:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out),
        )
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(out, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out


def init_expert_resnet(model: nn.Module) -> None:
    """Initialise convolutions N(0, √(2/(k_h·k_w·out_channels))) and BatchNorm to 1 and 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class ExpertResNet(Backbone):
    """Build SADE's multi-expert ResNet: shared stem–layer2, per-expert layer3–4 and cosine heads.

    Randomly initialised as in MONICA (spec §0.3 #17) with its expert ResNet's own rule: every
    convolution N(0, √(2/(k²·out_channels))), every BatchNorm weight 1 and bias 0 (the cosine
    heads keep their own U(−1, 1) init); give ``weights:`` a local checkpoint for a pre-trained
    trunk. Global average pooling replaces the fixed AvgPool2d(7), which is the same
    at 224 px and also works for other sizes.

    References: Zhang et al., NeurIPS 2022 (SADE); Wang et al., ICLR 2021 (RIDE). MONICA
    ``models/Expert_ResNet.py``.
    """

    def __init__(self, params: ExpertResNetParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        num_classes = params.num_classes or ctx.data.num_classes
        if not num_classes:
            raise ComponentError(
                "longtail.sade_resnet needs the number of classes: set num_classes or use a "
                "dataset whose facts() report num_classes"
            )
        channels = params.in_chans or ctx.data.in_channels or 3
        p = params.planes
        self.stem = nn.Sequential(
            nn.Conv2d(channels, p[0], kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(p[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        layer1, width = _make_layer(p[0], p[0], params.layers[0], 1)
        layer2, width = _make_layer(width, p[1], params.layers[1], 2)
        self.shared = nn.Sequential(layer1, layer2)
        experts = []
        for _ in range(params.num_experts):
            layer3, out3 = _make_layer(width, p[2], params.layers[2], 2)
            layer4, out4 = _make_layer(out3, p[3], params.layers[3], 2)
            experts.append(nn.Sequential(layer3, layer4, nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        self.experts = nn.ModuleList(experts)
        self.feature_dim = out4
        init_expert_resnet(self)
        self.heads = nn.ModuleList(
            NormedLinear(out4, int(num_classes)) for _ in range(params.num_experts)
        )

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        trunk = self.shared(self.stem(batch["image"]))
        features = [expert(trunk) for expert in self.experts]
        logits = [self.params.scale * head(f) for head, f in zip(self.heads, features, strict=True)]
        expert_logits = torch.stack(logits)
        expert_features = torch.stack(features)
        return {
            "logits": expert_logits.mean(dim=0),
            "features": expert_features.mean(dim=0),
            "expert_logits": expert_logits,
            "expert_features": expert_features,
        }

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every expert's cosine head with a fresh one of ``num_classes`` outputs."""
        device = cast(NormedLinear, self.heads[0]).weight.device
        self.heads = nn.ModuleList(
            NormedLinear(self.feature_dim, num_classes).to(device)
            for _ in range(self.params.num_experts)
        )
