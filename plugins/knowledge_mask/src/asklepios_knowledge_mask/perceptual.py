"""Fundus2Video's pixel-structure losses: gradient variance and VGG19 perceptual loss (§6).

Both treat the 3 consecutive frames of a window step as if they were RGB channels (as the original).

References:
    Abrahamyan et al., "Gradient Variance Loss for Structure-Enhanced Image Super-Resolution",
    ICASSP 2022; Wang et al., pix2pixHD (``VGGLoss``), CVPR 2018; Zhang et al., "Fundus2Video",
    MICCAI 2024, arXiv 2408.15217.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, Loss, LossOutput, WeightsError
from torch import Tensor, nn

from asklepios_knowledge_mask.params import GradientVarianceParams, VGGPerceptualParams

__all__ = [
    "GradientVariance",
    "VGGPerceptual",
    "gradient_variance",
    "load_state_dict_file",
]

_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))
_GREY = (0.2989, 0.5870, 0.1140)


def _patch_variances(x: Tensor, patch_size: int) -> tuple[Tensor, Tensor]:
    # the same sum, in the same order, as sum(w * x[:, i : i + 1] for i, w in enumerate(_GREY))
    grey = _GREY[0] * x[:, 0:1] + _GREY[1] * x[:, 1:2] + _GREY[2] * x[:, 2:3]
    kx = torch.tensor(_SOBEL_X, dtype=x.dtype, device=x.device)[None, None]
    ky = torch.tensor(_SOBEL_Y, dtype=x.dtype, device=x.device)[None, None]
    gx = F.unfold(F.conv2d(grey, kx, padding=1), patch_size, stride=patch_size)
    gy = F.unfold(F.conv2d(grey, ky, padding=1), patch_size, stride=patch_size)
    return gx.var(dim=1), gy.var(dim=1)


def gradient_variance(output: Tensor, target: Tensor, patch_size: int = 12) -> Tensor:
    """Return ``MSE(var_x(Ŷ), var_x(Y)) + MSE(var_y(Ŷ), var_y(Y))`` over 12×12 Sobel patches."""
    vx_o, vy_o = _patch_variances(output, patch_size)
    vx_t, vy_t = _patch_variances(target, patch_size)
    return F.mse_loss(vx_o, vx_t) + F.mse_loss(vy_o, vy_t)


class GradientVariance(Loss):
    """Match per-patch variances of Sobel gradients of generated and real frames (``G_seg``).

    ``forward(outputs, batch)``: ``outputs['logits']`` (``Ŷ``, ``(B, 3, H, W)``) against
    ``batch['target']`` (``Y``). Greyscale ``0.2989 c0 + 0.5870 c1 + 0.1140 c2``, Sobel x/y
    (padding 1), unbiased variance in each non-overlapping 12×12 patch (the remainder is dropped).
    """

    def __init__(self, params: GradientVarianceParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        value = gradient_variance(outputs["logits"], batch["target"], self.params.patch_size)
        return LossOutput(self.params.weight * value, {"gradient_variance": value})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 2
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Return generated and real 3-frame windows of 36×36 pixels."""
        gen = torch.Generator().manual_seed(0)
        fake = (torch.rand(batch_size, 3, 36, 36, generator=gen) * 2 - 1).requires_grad_(True)
        target = torch.rand(batch_size, 3, 36, 36, generator=gen) * 2 - 1
        return {"logits": fake}, {"target": target}


def load_state_dict_file(path: str | Path, what: str) -> dict[str, Tensor]:
    """Load a state dict from a local ``.safetensors``/``.pt``/``.pth`` file (never downloads).

    Reading goes through ``asklepios_sdk.weights.read_state_dict`` (safetensors, or
    ``torch.load(weights_only=True)``, unwrapping ``state_dict``-style checkpoints).

    Raises:
        WeightsError: the file is missing or cannot be read, naming the path and the fix.
    """
    from asklepios_sdk.weights import read_state_dict

    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(
            f"{what}: weights file {str(file)!r} does not exist. Download the weights yourself "
            "(e.g. torchvision's vgg19 ImageNet state dict) and give its local path"
        )
    return read_state_dict(file)


_VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))


class VGGPerceptual(Loss):
    """Compare frozen VGG19 features of generated and real frames (pix2pixHD ``VGGLoss``).

    ``λ_feat · Σ_i w_i · L1(φ_i(Ŷ), φ_i(Y))`` with ``φ_i`` ending at relu1_1 ... relu5_1 and
    ``w = (1/32, 1/16, 1/8, 1/4, 1)``; the ``[-1, 1]`` frames are fed as RGB without ImageNet
    normalisation (as the original). Weights come only from ``weights_path``.
    """

    def __init__(self, params: VGGPerceptualParams, ctx: BuildContext) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        self.params = params
        # the feature extractor of torchvision's vgg19 up to relu5_1, without the classifier
        features = make_layers(cfgs["E"], batch_norm=False)[:30]
        state = load_state_dict_file(params.weights_path, "knowledge_mask.vgg_perceptual")
        if any(key.startswith("features.") for key in state):
            state = {
                k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")
            }
        wanted = set(features.state_dict())
        missing = sorted(wanted - set(state))
        if missing:
            raise WeightsError(
                f"knowledge_mask.vgg_perceptual: {params.weights_path!r} lacks VGG19 keys "
                f"{missing[:4]}...; expected torchvision vgg19 'features.N.weight/bias'"
            )
        features.load_state_dict({k: state[k] for k in wanted})
        features.requires_grad_(False)
        features.eval()
        self.slices = nn.ModuleList(features[a:b] for a, b in _VGG_SLICES)

    def train(self, mode: bool = True) -> VGGPerceptual:
        """Keep the frozen VGG in eval mode whatever the engine asks."""
        super().train(mode)
        self.slices.eval()
        return self

    def features(self, x: Tensor) -> list[Tensor]:
        """Return the relu1_1 ... relu5_1 activations of ``x``."""
        out = []
        for block in self.slices:
            x = block(x)
            out.append(x)
        return out

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        fake_feats = self.features(outputs["logits"])
        with torch.no_grad():
            real_feats = self.features(batch["target"])
        value = outputs["logits"].new_zeros(())
        for w, f, r in zip(self.params.layer_weights, fake_feats, real_feats, strict=True):
            value = value + w * F.l1_loss(f, r.detach())
        return LossOutput(self.params.weight * value, {"vgg": value})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 2
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Return generated and real 3-frame windows of 32×32 pixels."""
        gen = torch.Generator().manual_seed(0)
        fake = (torch.rand(batch_size, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
        target = torch.rand(batch_size, 3, 32, 32, generator=gen) * 2 - 1
        return {"logits": fake}, {"target": target}
