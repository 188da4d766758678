"""RSG backbone: a timm ResNeXt-50 with the RSG module after layer3 and a cosine head.

The RSG module works on *detached* layer-3 feature maps F (so its terms train only the RSG
parameters) and returns the class-aware center and pair-contrastive terms (CESC) and the
feature-transfer term (MV) as ``aux_losses``, which the engine adds to the configured loss
(MONICA: LDAM-DRW). While MV runs, the tail maps it synthesises join the batch after layer3;
the outputs then carry ``label`` for every row, which the longtail losses read.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError
from torch import Tensor, nn
from torch.func import functional_call

from asklepios_longtail.adapters import NormedLinear
from asklepios_longtail.params import RSGResNeXtParams

__all__ = ["RSGModule", "RSGResNeXt", "transfer_pairs"]


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
    """Compute RSG's center, pair-contrastive and feature-transfer (MV) terms on layer-3 maps.

    Center: γ_i = softmax_k(pool(F_i)·A_{y_i,:,k} + b_{y_i,k}), then
    (1/B) Σ_i Σ_k γ_ik ‖F_i − μ_{y_i,k}‖² with the centers broadcast over space.
    Contrast: sample i is paired with i + B/2; the two maps are concatenated along channels
    → 1×1 conv → ReLU → 3×3 conv → global pool → linear(2), with CE against "same class?".
    Transfer (:meth:`transfer`): a head sample's variation F_h − μ_{y_h,k*} (k* its most likely
    center) goes through a 3×3 conv T and is added to a tail sample's map.

    Initialised as MONICA's: A ~ N(0, 1), b = 1, μ = 0, convolutions Kaiming-normal (fan-out)
    and the linear layer Kaiming-normal, biases 0.
    """

    def __init__(self, channels: int, num_classes: int, n_center: int, contrastive_dim: int):
        super().__init__()
        self.channels = channels
        self.centers = nn.Parameter(torch.zeros(num_classes, n_center, channels))
        self.assign_weight = nn.Parameter(torch.randn(num_classes, channels, n_center))
        self.assign_bias = nn.Parameter(torch.ones(num_classes, n_center))
        self.contrast = nn.Sequential(
            nn.Conv2d(2 * channels, contrastive_dim, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(contrastive_dim, contrastive_dim, kernel_size=3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(contrastive_dim, 2),
        )
        self.transform = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight)
            if isinstance(module, nn.Conv2d | nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def assignment(self, maps: Tensor, labels: Tensor) -> Tensor:
        """Return γ: each map's soft assignment to the centers of its class, (B, K)."""
        pooled = maps.mean(dim=(2, 3))  # (B, Ch)
        scores = torch.einsum("bc,bck->bk", pooled, self.assign_weight[labels])
        return (scores + self.assign_bias[labels]).softmax(dim=1)

    def center_term(self, maps: Tensor, labels: Tensor) -> Tensor:
        """Return the soft-assigned distance of each map to its class centers."""
        gamma = self.assignment(maps, labels)
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

    def forward(self, maps: Tensor, labels: Tensor, contrast: bool = True) -> Tensor:
        center = self.center_term(maps, labels)
        return center + self.contrast_term(maps, labels) if contrast else center

    def transfer(
        self, head: Tensor, head_labels: Tensor, tail: Tensor, tail_labels: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Move head variations onto tail maps (same count); return (MV loss, new tail maps).

        With V = F_h − μ_{y_h,k*}, V' = T(V) and D = F_t − μ_{y_t,k*} (k* = argmax γ; γ, the
        centers and the maps carry no gradient, so the term trains T only):
        MV = CE(contrast([F_h ; V']), "different") + (Σ_r |‖V'_r‖ − ‖V_r‖| +
        Σ |D̂ ⊙ V̂' − 1|) / n, where r runs over the rows of the maps reshaped to (−1, Ch) in
        (B, Ch, H, W) order and ^ normalises each row, as MONICA's code does; the contrast
        module's parameters are held fixed. The new tail maps are F_t + V'.
        """
        with torch.no_grad():
            k_head = self.assignment(head, head_labels).argmax(dim=1)
            k_tail = self.assignment(tail, tail_labels).argmax(dim=1)
            center_head = self.centers[head_labels, k_head][:, :, None, None]
            center_tail = self.centers[tail_labels, k_tail][:, :, None, None]
        variation = head - center_head
        moved = self.transform(variation)
        fixed = {name: p.detach() for name, p in self.contrast.named_parameters()}
        pair = torch.cat([head, moved], dim=1)
        different = torch.zeros(len(head), dtype=torch.long, device=head.device)
        ce = F.cross_entropy(functional_call(self.contrast, fixed, (pair,)), different)
        c = self.channels
        norms = (moved.reshape(-1, c).norm(dim=1) - variation.reshape(-1, c).norm(dim=1)).abs()
        direction = F.normalize((tail - center_tail).reshape(-1, c), dim=1)
        aligned = (direction * F.normalize(moved.reshape(-1, c), dim=1) - 1).abs()
        return ce + (norms.sum() + aligned.sum()) / len(tail), tail + moved


def transfer_pairs(head: Tensor, tail: Tensor, strength: float) -> list[tuple[Tensor, Tensor]]:
    """Return MONICA's (head indices, tail indices) rounds of equal size for the transfer.

    With n_h ≥ n_t: max(1, int(n_h·s/n_t)) rounds, round j pairs head samples
    j·n_t … (j+1)·n_t − 1 with every tail sample; else the reverse. Empty when either is empty.
    """
    n_head, n_tail = len(head), len(tail)
    if not n_head or not n_tail:
        return []
    if n_head >= n_tail:
        rounds = max(1, int(n_head * strength / n_tail))
        return [(head[j * n_tail : (j + 1) * n_tail], tail) for j in range(rounds)]
    rounds = max(1, int(n_tail * strength / n_head))
    return [(head, tail[j * n_head : (j + 1) * n_head]) for j in range(rounds)]


class RSGResNeXt(Backbone):
    """Build RSG's backbone: ResNeXt-50 trunk, RSG module after layer3, cosine head.

    In training (with labels) ``aux_losses`` holds ``rsg_cesc`` = 0.1·CESC and ``rsg_mv`` =
    0.01·MV on the detached layer-3 maps. CESC is the center term plus, while epoch <=
    ``epoch_thresh``, the pair-contrastive term; after it, tail maps (classes outside the
    ``head_classes`` most frequent) receive variations transferred from head maps, and the new
    maps go through layer4 and the head with their tail labels, appended to the batch
    (``outputs["label"]`` lists every row's label). Evaluation runs without the module. Random
    init (weights: a local file through the config's ``weights:``; never a download). Pair with
    ``longtail.ldam`` (s 30, DRW) and ``longtail.switch`` (→ effective_number at int(0.8E)).

    References: Wang et al., CVPR 2021 (RSG). MONICA ``models/resnet.py``, ``models/RSG.py``.
    """

    trunk: _ResNetTrunk
    head_list: Tensor

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
        self.register_buffer("head_list", self._head_classes(params, ctx), persistent=False)
        self.epoch = 0

    @staticmethod
    def _head_classes(params: RSGResNeXtParams, ctx: BuildContext) -> Tensor:
        if params.head_classes is None:
            if params.epoch_thresh < ctx.epochs - 1:
                raise ComponentError(
                    f"longtail.rsg_resnext: the feature transfer (MV) runs from epoch "
                    f"{params.epoch_thresh + 1} of this stage's {ctx.epochs}, so it needs the "
                    "head classes: set head_classes (MONICA's datasets.head, e.g. 3), or raise "
                    "epoch_thresh"
                )
            return torch.zeros(0, dtype=torch.long)
        counts = ctx.data.class_counts
        if counts is None or len(counts) < params.head_classes:
            raise ComponentError(
                f"longtail.rsg_resnext: head_classes={params.head_classes} needs the training "
                f"class counts of at least that many classes, but the dataset reports "
                f"{'none' if counts is None else len(counts)}"
            )
        order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
        return torch.tensor(order[: params.head_classes], dtype=torch.long)

    def set_epoch(self, epoch: int) -> None:
        """Receive the 0-based epoch about to start (the CESC/MV switch reads it)."""
        self.epoch = int(epoch)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        t = self.trunk
        x = t.maxpool(t.act1(t.bn1(t.conv1(batch["image"]))))
        maps = t.layer3(t.layer2(t.layer1(x)))
        aux: dict[str, Tensor] = {}
        labels: Tensor | None = None
        if self.training and "label" in batch:
            labels = batch["label"]
            p = self.params
            detached = maps.detach()
            transfer = self.epoch > p.epoch_thresh
            aux["rsg_cesc"] = p.cesc_weight * self.rsg(detached, labels, contrast=not transfer)
            mv = detached.new_zeros(())
            if transfer:
                is_head = torch.isin(labels, self.head_list)
                rounds = transfer_pairs(
                    torch.nonzero(is_head).flatten(),
                    torch.nonzero(~is_head).flatten(),
                    p.transfer_strength,
                )
                new_maps, new_labels = [maps], [labels]
                for head, tail in rounds:
                    loss, moved = self.rsg.transfer(
                        detached[head], labels[head], detached[tail], labels[tail]
                    )
                    mv = mv + loss / len(rounds)
                    new_maps.append(moved)
                    new_labels.append(labels[tail])
                maps, labels = torch.cat(new_maps), torch.cat(new_labels)
            aux["rsg_mv"] = p.mv_weight * mv
        features = t.global_pool(t.layer4(maps))
        out = {"logits": self.head(features), "features": features}
        if labels is not None:
            out["aux_losses"] = aux
            if len(labels) != len(batch["label"]):
                out["label"] = labels
        return out

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the cosine head with a fresh one of ``num_classes`` outputs."""
        device = self.head.weight.device
        self.head = NormedLinear(self.feature_dim, num_classes).to(device)
