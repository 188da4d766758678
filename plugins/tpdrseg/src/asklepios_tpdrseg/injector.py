"""Adapter ``tpdrseg.injector``: prior-aligned cross-attention injectors between SAM's blocks.

After block ``i`` (channels-first view ``F_i``, prior ``P_e`` broadcast over channels)::

    F_act = F_i * P_e
    Q = W_Q * F_i,  K = W_K * F_act,  V = W_V * F_act      (1x1 convs C -> C_h, stride 4)
    A = softmax(Q^T K / sqrt(C_h))                         (N = (h/4)(w/4) tokens)
    F'_i = upsample_bilinear(A V^T)  [-> 1x1 conv C_h -> C when C_h != C]
    F_i <- F_i + gamma_i F'_i,  gamma_i = 0 at initialisation

so SAM starts exactly as pre-trained. Specified from the public re-implementation (spec 2.3);
its layer-index lookup is replaced by an explicit block -> injector map.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_tpdrseg.encoder import find_encoder, sam_example_batch
from asklepios_tpdrseg.params import InjectorParams

__all__ = ["Injector", "PriorAlignedInjector", "injector_parameter_count"]


def injector_parameter_count(channels: int, hidden: int) -> int:
    """Return the parameters of one injector: 3 (C C_h + C_h) + 1, plus C_h C + C if C_h != C."""
    count = 3 * (channels * hidden + hidden) + 1
    if hidden != channels:
        count += hidden * channels + channels
    return count


class PriorAlignedInjector(nn.Module):
    """One prior-aligned injector (single-head attention, no norm, no MLP).

    Args:
        channels: C, the ViT width.
        hidden: C_h, the attention width.
        stride: token stride of Q/K/V.
        kv_downsample: ``subsample`` (strided 1x1 conv) or ``avgpool`` (pool, then 1x1 conv) for
            K and V; Q is always subsampled.
    """

    def __init__(
        self, channels: int, hidden: int, stride: int = 4, kv_downsample: str = "subsample"
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.stride = stride
        self.kv_downsample = kv_downsample
        kv_stride = stride if kv_downsample == "subsample" else 1
        self.query = nn.Conv2d(channels, hidden, kernel_size=1, stride=stride)
        self.key = nn.Conv2d(channels, hidden, kernel_size=1, stride=kv_stride)
        self.value = nn.Conv2d(channels, hidden, kernel_size=1, stride=kv_stride)
        self.out: nn.Module = (
            nn.Identity() if hidden == channels else nn.Conv2d(hidden, channels, kernel_size=1)
        )
        self.gamma = nn.Parameter(torch.zeros(1))

    def _kv_input(self, x: Tensor) -> Tensor:
        if self.kv_downsample == "avgpool":
            return F.avg_pool2d(x, self.stride, self.stride, ceil_mode=True)
        return x

    def forward(self, x: Tensor, prior: Tensor) -> Tensor:
        """Return ``x + gamma F'`` for channels-last ``x (B, h, w, C)``, ``prior (B, 1, h, w)``."""
        features = x.permute(0, 3, 1, 2)
        activated = features * prior
        q = self.query(features)
        k = self.key(self._kv_input(activated))
        v = self.value(self._kv_input(activated))
        batch, hidden, height, width = q.shape
        q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
        attention = torch.softmax(q.transpose(1, 2) @ k / hidden**0.5, dim=-1)
        mixed = (
            (attention @ v.transpose(1, 2)).transpose(1, 2).reshape(batch, hidden, height, width)
        )
        mixed = F.interpolate(mixed, size=features.shape[-2:], mode="bilinear", align_corners=False)
        return x + self.gamma * self.out(mixed).permute(0, 2, 3, 1)


class Injector(Adapter):
    """Inject the explicit prior into SAM's encoder with gamma-gated cross-attention.

    ``wrap`` finds the ``tpdrseg.sam_encoder`` inside the model and hooks the injectors in after
    the configured blocks (all by default). The prior is read from ``batch["prior"]``, which
    ``tpdrseg.explicit_prior`` adds (place it anywhere in the adapter list).

    Raises:
        ComponentError: no SAM encoder inside the model, a block index out of range, or no
            ``prior`` in the batch at run time.
    """

    injectors: nn.ModuleList

    def __init__(self, params: InjectorParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.layer_to_injector: dict[int, int] = {}

    def wrap(self, model: nn.Module) -> nn.Module:
        """Build one injector per configured block of the wrapped SAM encoder and hook them in."""
        encoder = find_encoder(model, "tpdrseg.injector")
        blocks = encoder.num_blocks
        layers = list(range(blocks)) if self.params.layers is None else list(self.params.layers)
        bad = [i for i in layers if not 0 <= i < blocks]
        if bad or len(set(layers)) != len(layers):
            raise ComponentError(
                f"tpdrseg.injector: layers {layers} must be distinct block indices in "
                f"0..{blocks - 1} of the SAM encoder"
            )
        channels = encoder.embed_dim
        hidden = self.params.hidden_dim or channels
        self.layer_to_injector = {layer: position for position, layer in enumerate(layers)}
        self.injectors = nn.ModuleList(
            PriorAlignedInjector(channels, hidden, self.params.stride, self.params.kv_downsample)
            for _ in layers
        )
        encoder.set_block_hook(self.inject)
        return super().wrap(model)

    def inject(self, index: int, x: Tensor, batch: Mapping[str, Any]) -> Tensor:
        """Apply the injector of block ``index`` (if any) with ``batch["prior"]``."""
        position = self.layer_to_injector.get(index)
        if position is None:
            return x
        prior = batch.get("prior")
        if prior is None:
            raise ComponentError(
                "tpdrseg.injector: the batch has no 'prior'; add tpdrseg.explicit_prior to "
                "model.adapters"
            )
        if tuple(prior.shape[-2:]) != tuple(x.shape[1:3]):
            prior = F.interpolate(prior, size=x.shape[1:3], mode="bilinear", align_corners=False)
        return self.injectors[position](x, prior.to(x.dtype))

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return self.model(batch)

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return SAM-sized images with lesion indices and masks."""
        return sam_example_batch(getattr(self, "model", None), ctx, batch_size)
