"""Adapters ``tpdrseg.prompt_generator`` and ``tpdrseg.mask_decoder``: prompts and masks.

The prompt generator replaces SAM's point/box prompts (spec 2.4, from the re-implementation)::

    F_p = F_e * P_e                                   (B, C_p, h, w)
    E_d = Conv1x1(C_p -> C_p)(F_p)                    dense prompt, (B, C_p, h, w)
    E_s = Linear(h w -> C_p)(F_p.reshape(B, C_p, h w)) sparse prompt, (B, C_p tokens, C_p)

SAM's mask decoder then predicts one mask per image from ``F_e``, SAM's dense positional encoding,
``E_s`` and ``E_d``. ``segment_anything``'s decoder repeats every image embedding once per prompt
set (it serves one image with many prompts), which with B images and B prompt sets builds B^2
copies; the head calls it image by image instead (spec 2.5).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, BuildContext, ComponentError, EmptyParams, WeightsError
from torch import Tensor, nn

from asklepios_tpdrseg._frozen import ReferencedWeights
from asklepios_tpdrseg.encoder import (
    find_encoder,
    is_meta,
    read_sam_checkpoint,
    sam_example_batch,
)
from asklepios_tpdrseg.params import MaskDecoderHeadParams

__all__ = ["MaskDecoderHead", "PromptGenerator", "prompt_generator_parameter_count"]


def prompt_generator_parameter_count(channels: int, tokens: int) -> int:
    """Return the generator's parameters: Conv1x1 C_p -> C_p and Linear(h w -> C_p), with bias."""
    return channels * channels + channels + tokens * channels + channels


def _prior_at(prior: Tensor, size: tuple[int, ...]) -> Tensor:
    if tuple(prior.shape[-2:]) == size:
        return prior
    return F.interpolate(prior, size=size, mode="bilinear", align_corners=False)


class PromptGenerator(Adapter):
    """Generate SAM's dense and sparse prompts from the prior-gated image embedding.

    Reads ``features`` (``F_e``) and ``prior`` (``P_e``) from the wrapped model's output (or the
    prior from the batch) and adds
    ``dense_prompt`` ``(B, C_p, h, w)`` and ``sparse_prompt`` ``(B, C_p, C_p)``. The sparse
    Linear has ``h * w`` inputs (4096 for 1024-pixel images), so it is built in ``wrap``.
    """

    dense: nn.Conv2d
    sparse: nn.Linear

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__()

    def wrap(self, model: nn.Module) -> nn.Module:
        """Size the projections from the wrapped SAM encoder (neck width and token grid)."""
        encoder = find_encoder(model, "tpdrseg.prompt_generator")
        channels, tokens = encoder.out_chans, encoder.grid * encoder.grid
        self.dense = nn.Conv2d(channels, channels, kernel_size=1)
        self.sparse = nn.Linear(tokens, channels)
        return super().wrap(model)

    def prompts(self, features: Tensor, prior: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(E_d, E_s)`` of ``features (B, C_p, h, w)`` gated by ``prior (B, 1, h, w)``."""
        gated = features * _prior_at(prior, tuple(features.shape[-2:])).to(features.dtype)
        return self.dense(gated), self.sparse(gated.flatten(2))

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        prior = out.get("prior", batch.get("prior"))
        if prior is None:
            raise ComponentError(
                "tpdrseg.prompt_generator: neither the model output nor the batch has a "
                "'prior'; add tpdrseg.explicit_prior to model.adapters before it"
            )
        out["dense_prompt"], out["sparse_prompt"] = self.prompts(out["features"], prior)
        return out

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return SAM-sized images with lesion indices and masks."""
        return sam_example_batch(getattr(self, "model", None), ctx, batch_size)


class MaskDecoderHead(Adapter, ReferencedWeights):
    """Predict one lesion mask per image with SAM's mask decoder, batched per image.

    Reads ``features``, ``dense_prompt`` and ``sparse_prompt``; returns ``logits`` upsampled
    bilinearly to the input size ``(B, 1, H, W)``, plus ``low_res_logits`` (``(B, 1, 4h, 4w)``)
    and ``iou_prediction``. SAM's positional encoding (frozen buffer) comes from the checkpoint;
    the multimask hypernetworks and the IoU head, which never reach the logits, stay frozen and,
    loaded from a file, are referenced by its sha256 instead of saved in checkpoints.

    Raises:
        WeightsError: neither ``checkpoint`` nor ``random_init``, or weights that do not fit.
    """

    def __init__(self, params: MaskDecoderHeadParams, ctx: BuildContext) -> None:
        super().__init__()
        if not params.checkpoint and not params.random_init:
            raise WeightsError(
                "tpdrseg.mask_decoder: no weights: set 'checkpoint' to the local SAM checkpoint "
                "(the same file as tpdrseg.sam_encoder); 'random_init: true' is for tests"
            )
        self.params = params

    def wrap(self, model: nn.Module) -> nn.Module:
        """Build SAM's decoder at the encoder's neck width, then load its checkpoint weights."""
        from segment_anything.modeling import MaskDecoder, TwoWayTransformer
        from segment_anything.modeling.prompt_encoder import PositionEmbeddingRandom

        encoder = find_encoder(model, "tpdrseg.mask_decoder")
        width, params = encoder.out_chans, self.params
        self.grid = encoder.grid
        self.decoder = MaskDecoder(
            num_multimask_outputs=params.num_multimask_outputs,
            transformer=TwoWayTransformer(
                depth=params.transformer_depth,
                embedding_dim=width,
                mlp_dim=params.mlp_dim,
                num_heads=params.num_heads,
            ),
            transformer_dim=width,
            iou_head_depth=3,
            iou_head_hidden_dim=params.iou_head_hidden_dim,
        )
        self.pe_layer = PositionEmbeddingRandom(width // 2)
        if params.checkpoint and not is_meta(self.decoder):  # a skeleton reads no file
            self._load(params.checkpoint)
        # one mask per image (multimask_output=False): the other masks' hypernetworks and the
        # IoU head never reach the logits, so they stay frozen (DDP needs every trainable
        # parameter to receive a gradient)
        unused = [*self.decoder.output_hypernetworks_mlps[1:], self.decoder.iou_prediction_head]
        for module in unused:
            module.requires_grad_(False)
        if params.checkpoint and not is_meta(self.decoder):
            frozen = [n for n, p in self.decoder.named_parameters() if not p.requires_grad]
            self.reference_weights([f"decoder.{n}" for n in frozen], params.checkpoint)
        return super().wrap(model)

    def _load(self, path: str) -> None:
        where = "tpdrseg.mask_decoder"
        state = read_sam_checkpoint(path, "", where)
        decoder = {
            k[len("mask_decoder.") :]: v for k, v in state.items() if k.startswith("mask_decoder.")
        }
        key = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
        if not decoder or key not in state:
            raise WeightsError(
                f"{where}: {path} has no 'mask_decoder.*' keys or no '{key}'; give the full SAM "
                "checkpoint (e.g. sam_vit_b_01ec64.pth)"
            )
        try:
            self.decoder.load_state_dict(decoder, strict=True)
            self.pe_layer.load_state_dict({"positional_encoding_gaussian_matrix": state[key]})
        except RuntimeError as err:
            raise WeightsError(f"{where}: {path} does not fit this decoder ({err})") from err

    def dense_pe(self) -> Tensor:
        """Return SAM's dense positional encoding of the token grid, ``(1, C_p, h, w)``."""
        return self.pe_layer((self.grid, self.grid)).unsqueeze(0)

    def decode(self, features: Tensor, sparse: Tensor, dense: Tensor) -> tuple[Tensor, Tensor]:
        """Return low-resolution mask logits ``(B, 1, 4h, 4w)`` and IoU predictions ``(B, 1)``."""
        pe = self.dense_pe().to(features.dtype)
        masks, ious = [], []
        for i in range(features.shape[0]):  # one image and its own prompts per decoder call
            mask, iou = self.decoder(
                image_embeddings=features[i : i + 1],
                image_pe=pe,
                sparse_prompt_embeddings=sparse[i : i + 1],
                dense_prompt_embeddings=dense[i : i + 1],
                multimask_output=False,
            )
            masks.append(mask)
            ious.append(iou)
        return torch.cat(masks), torch.cat(ious)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        if "dense_prompt" not in out:
            raise ComponentError(
                "tpdrseg.mask_decoder: the model output has no prompts; add "
                "tpdrseg.prompt_generator to model.adapters before it"
            )
        low, iou = self.decode(out["features"], out["sparse_prompt"], out["dense_prompt"])
        size = batch["image"].shape[-2:]
        out["logits"] = F.interpolate(low, size=size, mode="bilinear", align_corners=False)
        out["low_res_logits"] = low
        out["iou_prediction"] = iou
        return out

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return SAM-sized images with lesion indices and masks."""
        return sam_example_batch(getattr(self, "model", None), ctx, batch_size)
