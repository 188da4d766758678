"""Adapter ``tpdrseg.explicit_prior``: a dense lesion prior from a frozen CLIP (RECONSTRUCTED).

Nothing of TP-DRSeg's prior encoder is published; this is the spec's reconstruction (section 2.2):

1. explicit attribute prompts per lesion and background prompts, encoded once by CLIP's text
   tower, ``t_j = normalise(E_T(prompt_j))``;
2. MaskCLIP-style dense image features: the CLIP image tower on the SAM input resized to
   ``input_size`` (position embeddings interpolated bicubically); the last block's *value* tokens
   through the attention output projection, ``ln_post`` and the final projection, normalised per
   location: ``Z (B, g, g, d)``;
3. ``softmax_vs_background``: ``P(u) = sum_{j in lesion} softmax_j(Z(u) . t_j / tau)`` over the
   sample's lesion prompts and the background prompts; ``minmax_mean_similarity``:
   ``P = minmax_u(mean_{j in lesion} cos(Z(u), t_j))``;
4. ``P_e = bilinear(P, token grid)``, ``(B, 1, h, w)`` in [0, 1], without gradient.

CLIP is built through the registry (``core.open_clip`` by default), so its weights load exactly as
that backbone loads them (local file or open_clip cache, never a download).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, BuildContext, ComponentError
from asklepios_sdk.components import build_component
from torch import Tensor, nn

from asklepios_tpdrseg._frozen import ReferencedWeights
from asklepios_tpdrseg.encoder import (
    SAM_PIXEL_MEAN,
    SAM_PIXEL_STD,
    SamImageEncoder,
    sam_example_batch,
)
from asklepios_tpdrseg.params import LESIONS, ExplicitPriorParams

__all__ = [
    "ExplicitPrior",
    "clip_branch_input",
    "maskclip_dense_features",
    "prior_from_features",
    "resize_prior",
]

_WEIGHT_KEYS = ("pretrained_file", "pretrained", "cache_dir")


def clip_branch_input(image: Tensor, size: int, mean: Tensor, std: Tensor) -> Tensor:
    """Return the CLIP-branch input of SAM-normalised images: de-normalise, resize, normalise.

    Args:
        image: ``(B, 3, S, S)`` normalised with SAM's statistics (the padded SAM input, so the
            prior covers the same field of view as SAM's token grid).
        size: side of the CLIP input (448).
        mean, std: CLIP's statistics, broadcastable to ``(B, 3, 1, 1)``, for pixels in [0, 1].
    """
    sam_mean = image.new_tensor(SAM_PIXEL_MEAN).view(1, 3, 1, 1)
    sam_std = image.new_tensor(SAM_PIXEL_STD).view(1, 3, 1, 1)
    pixels = image * sam_std + sam_mean
    if tuple(pixels.shape[-2:]) != (size, size):
        pixels = F.interpolate(
            pixels, size=(size, size), mode="bicubic", align_corners=False, antialias=True
        )
    return (pixels.clamp(0, 1) - mean.to(pixels)) / std.to(pixels)


def _positional_embedding(visual: Any, grid: int) -> Tensor:
    """Return the visual tower's position embedding for a ``grid x grid`` token map."""
    pos = visual.positional_embedding
    cls, patches = pos[:1], pos[1:]
    old = math.isqrt(patches.shape[0])
    if old == grid:
        return pos
    patches = patches.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([cls, patches.permute(0, 2, 3, 1).reshape(grid * grid, -1)])


def maskclip_dense_features(visual: Any, images: Tensor) -> Tensor:
    """Return unit-norm MaskCLIP dense features ``(B, g, g, d)`` of an open_clip ViT.

    The last block contributes only ``out_proj(W_v ln_1(x) + b_v)`` per token (no query-key
    mixing, no residual, no MLP), followed by ``ln_post`` and ``proj``.

    Raises:
        ComponentError: the tower is not an open_clip VisionTransformer with
            ``nn.MultiheadAttention`` blocks (e.g. a ResNet CLIP).
    """
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None or not isinstance(getattr(blocks[-1], "attn", None), nn.MultiheadAttention):
        raise ComponentError(
            "tpdrseg.explicit_prior: MaskCLIP dense features need an open_clip ViT image tower "
            f"with nn.MultiheadAttention blocks, got {type(visual).__name__}; use a ViT CLIP"
        )
    x = visual.conv1(images.to(visual.conv1.weight.dtype))
    batch, width, grid = x.shape[0], x.shape[1], x.shape[-1]
    x = x.reshape(batch, width, -1).permute(0, 2, 1)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(batch, -1, -1)
    x = torch.cat([cls, x], dim=1) + _positional_embedding(visual, grid).to(x.dtype)
    x = visual.ln_pre(x)
    batch_first = getattr(visual.transformer, "batch_first", True)
    if not batch_first:
        x = x.transpose(0, 1)
    for block in blocks[:-1]:
        x = block(x)
    if not batch_first:
        x = x.transpose(0, 1)
    last = blocks[-1]
    attn: nn.MultiheadAttention = last.attn
    value = F.linear(last.ln_1(x), attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :])
    tokens = visual.ln_post(attn.out_proj(value))
    if visual.proj is not None:
        tokens = tokens @ visual.proj
    dense = tokens[:, 1:].reshape(batch, grid, grid, -1)
    return F.normalize(dense.float(), dim=-1)


def prior_from_features(
    features: Tensor,
    text: Tensor,
    lesion: Tensor,
    allowed: Tensor,
    mode: str = "softmax_vs_background",
    temperature: float = 0.01,
) -> Tensor:
    """Return the prior ``P (B, g, g)`` in [0, 1] from dense features and prompt embeddings.

    Args:
        features: unit dense features ``(B, g, g, d)``.
        text: unit prompt embeddings ``(N, d)``.
        lesion: ``(B, N)`` bool, the prompts of each sample's lesion.
        allowed: ``(B, N)`` bool, the prompts the softmax runs over (the lesion's and the
            background's).
        mode: ``softmax_vs_background`` or ``minmax_mean_similarity``.
        temperature: tau of the softmax.
    """
    cosine = torch.einsum("bhwd,nd->bhwn", features, text.to(features))
    if mode == "softmax_vs_background":
        logits = (cosine / temperature).masked_fill(~allowed[:, None, None, :], float("-inf"))
        return (logits.softmax(dim=-1) * lesion[:, None, None, :]).sum(dim=-1)
    if mode == "minmax_mean_similarity":
        weights = lesion.to(cosine) / lesion.sum(dim=-1, keepdim=True).clamp_min(1)
        mean = (cosine * weights[:, None, None, :]).sum(dim=-1)
        low = mean.amin(dim=(1, 2), keepdim=True)
        high = mean.amax(dim=(1, 2), keepdim=True)
        return (mean - low) / (high - low).clamp_min(1e-12)
    raise ComponentError(f"tpdrseg.explicit_prior: unknown prior_mode {mode!r}")


def resize_prior(prior: Tensor, size: int) -> Tensor:
    """Return ``P_e (B, 1, size, size)``: ``prior (B, g, g)`` resized bilinearly, in [0, 1]."""
    resized = F.interpolate(
        prior.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False
    )
    return resized.clamp(0, 1)


class ExplicitPrior(Adapter, ReferencedWeights):
    """Compute the explicit lesion prior P_e from a frozen CLIP and attribute prompts.

    Adds ``prior`` ``(B, 1, h, w)`` to the batch the wrapped model sees and to the output.
    ``batch["lesion"]`` selects each sample's lesion (an index into the dataset's
    ``facts.extras["lesions"]``, default MA, HE, EX, SE). No trainable parameters.

    Raises:
        ComponentError: a lesion without prompts, or a batch without ``lesion``.
    """

    text: Tensor
    lesion_columns: Tensor
    background_columns: Tensor

    def __init__(self, params: ExplicitPriorParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.lesions = tuple(ctx.data.extras.get("lesions") or LESIONS)
        missing = [name for name in self.lesions if name not in params.prompts]
        if missing:
            raise ComponentError(
                f"tpdrseg.explicit_prior: no prompts for lesion(s) {missing}; add them under "
                "'prompts' (a list of attribute descriptions per lesion)"
            )
        clip_params = dict(params.clip)
        if params.clip_file:
            clip_params["pretrained_file"] = params.clip_file
        skeleton = torch.get_default_device().type == "meta"
        if skeleton:  # a shape-only build (validate --deep): weights are checked, not loaded
            clip_params = {k: v for k, v in clip_params.items() if k not in _WEIGHT_KEYS}
            clip_params["random_init"] = True
        clip_ctx = ctx.replace(data=ctx.data.replace(num_classes=None, class_names=None))
        self.clip = build_component(
            "backbone",
            params.clip_component,
            clip_params,
            clip_ctx,
            where="tpdrseg.explicit_prior.clip",
        )
        for attribute in ("clip", "encode_text", "pixel_mean", "pixel_std"):
            if not hasattr(self.clip, attribute):
                raise ComponentError(
                    f"tpdrseg.explicit_prior: {params.clip_component} has no '{attribute}'; "
                    "use core.open_clip or a backbone with the same interface"
                )
        for parameter in self.clip.parameters():
            parameter.requires_grad_(False)
        self.clip.eval()
        prompts = [p for name in self.lesions for p in params.prompts[name]]
        self.prompts = prompts + list(params.background_prompts)
        owner = [i for i, name in enumerate(self.lesions) for _ in params.prompts[name]]
        lesion_columns = torch.zeros(len(self.lesions), len(self.prompts), dtype=torch.bool)
        for column, index in enumerate(owner):
            lesion_columns[index, column] = True
        background = torch.zeros(len(self.prompts), dtype=torch.bool)
        background[len(prompts) :] = True
        self.register_buffer("lesion_columns", lesion_columns, persistent=False)
        self.register_buffer("background_columns", background, persistent=False)
        self.register_buffer("text", torch.empty(0), persistent=False)
        self.prior_size = params.prior_size
        if not skeleton:
            self._reference_clip(clip_params)

    def _reference_clip(self, clip_params: dict[str, Any]) -> None:
        names = [f"clip.{n}" for n, _ in self.clip.named_parameters()]
        if clip_params.get("pretrained_file"):
            self.reference_weights(names, clip_params["pretrained_file"])
        elif clip_params.get("pretrained"):
            model, tag = str(clip_params.get("model")), str(clip_params["pretrained"])
            self.reference_weights(names, open_clip=f"{model}/{tag}")

    def wrap(self, model: nn.Module) -> nn.Module:
        """Take the SAM encoder's token grid as the prior's size unless ``prior_size`` is set."""
        if self.prior_size is None:
            grids = [m.grid for m in model.modules() if isinstance(m, SamImageEncoder)]
            if not grids:
                raise ComponentError(
                    "tpdrseg.explicit_prior: set 'prior_size' or wrap a tpdrseg.sam_encoder"
                )
            self.prior_size = grids[0]
        return super().wrap(model)

    def train(self, mode: bool = True) -> ExplicitPrior:
        """Set training mode; the frozen CLIP stays in eval mode."""
        super().train(mode)
        self.clip.eval()
        return self

    def text_features(self) -> Tensor:
        """Return the unit text embeddings of every prompt ``(N, d)`` (encoded once per device)."""
        device = self.lesion_columns.device
        if self.text.numel() == 0 or self.text.device != device:
            self.text = self.clip.encode_text(self.prompts).float().to(device)
        return self.text

    @torch.no_grad()
    def prior(self, image: Tensor, lesion: Tensor) -> Tensor:
        """Return ``P_e (B, 1, h, w)`` of SAM-normalised ``image`` for lesion indices ``lesion``."""
        if lesion.dim() != 1 or lesion.shape[0] != image.shape[0]:
            raise ComponentError(
                f"tpdrseg.explicit_prior: batch['lesion'] must be (B,) lesion indices, got "
                f"{tuple(lesion.shape)}"
            )
        clip_input = clip_branch_input(
            image, self.params.input_size, self.clip.pixel_mean, self.clip.pixel_std
        )
        dense = maskclip_dense_features(self.clip.clip.visual, clip_input)
        rows = self.lesion_columns[lesion.long()]
        prior = prior_from_features(
            dense,
            self.text_features(),
            rows,
            rows | self.background_columns,
            self.params.prior_mode,
            self.params.temperature,
        )
        assert self.prior_size is not None
        return resize_prior(prior, self.prior_size).to(image.dtype)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        if "lesion" not in batch:
            raise ComponentError(
                "tpdrseg.explicit_prior: the batch has no 'lesion' (which lesion each image is "
                "segmented for); use tpdrseg.fundus_lesions or tpdrseg.skimage_fundus"
            )
        prior = self.prior(batch["image"], batch["lesion"])
        out = dict(self.model({**batch, "prior": prior}))
        out["prior"] = prior
        return out

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return SAM-sized images with lesion indices and masks."""
        return sam_example_batch(getattr(self, "model", None), ctx, batch_size)
