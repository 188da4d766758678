"""Backbone ``tpdrseg.sam_encoder``: SAM's ViT image encoder, frozen, run block by block.

The encoder is ``segment_anything``'s :class:`~segment_anything.modeling.ImageEncoderViT` with the
weights of a local SAM checkpoint. :meth:`SamImageEncoder.encode` runs it as SAM's own forward does
(patch embedding, **plus the absolute position embedding**, the blocks, the neck) and calls an
optional hook after every block, where the prior-aligned injectors of ``tpdrseg.injector`` sit.
The re-implementation the spec describes skipped ``pos_embed``; here it is always added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from asklepios_sdk import Backbone, BuildContext, ComponentError, WeightsError
from torch import Tensor, nn

from asklepios_tpdrseg._frozen import ReferencedWeights
from asklepios_tpdrseg.params import SamImageEncoderParams

__all__ = [
    "VARIANTS",
    "BlockHook",
    "SamImageEncoder",
    "find_encoder",
    "is_meta",
    "read_sam_checkpoint",
    "sam_example_batch",
]

VARIANTS: dict[str, dict[str, Any]] = {
    "vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global": [2, 5, 8, 11]},
    "vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global": [5, 11, 17, 23]},
    "vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "global": [7, 15, 23, 31]},
}
"""SAM's encoder sizes, as in ``segment_anything.build_sam``."""

BlockHook = Callable[[int, Tensor, Mapping[str, Any]], Tensor]
"""``hook(block_index, x, batch) -> x`` run after a block on channels-last ``(B, h, w, C)``."""

SAM_PIXEL_MEAN = (0.485, 0.456, 0.406)
"""SAM's normalisation (123.675, 116.28, 103.53) / 255."""
SAM_PIXEL_STD = (0.229, 0.224, 0.225)
"""SAM's normalisation (58.395, 57.12, 57.375) / 255."""


def read_sam_checkpoint(path: str | Path, prefix: str, where: str) -> dict[str, Tensor]:
    """Return the tensors of a local SAM checkpoint under ``prefix`` (stripped).

    A file without any ``prefix`` key is taken as the part itself (e.g. an encoder-only dict).

    Raises:
        WeightsError: the file is missing or unreadable.
    """
    from asklepios_sdk.weights import read_state_dict

    file = Path(path).expanduser()
    if not file.is_file():
        raise WeightsError(
            f"{where}: SAM checkpoint {str(file)!r} does not exist; download "
            "sam_vit_b_01ec64.pth (or the vit_l / vit_h file) once and give its local path"
        )
    state = read_state_dict(file)
    part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return part or state


def is_meta(module: nn.Module) -> bool:
    """Return whether ``module`` was built on the meta device (a shape-only skeleton)."""
    return any(p.is_meta for p in module.parameters())


def _load_strict(module: nn.Module, state: Mapping[str, Tensor], path: Any, where: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightsError(
            f"{where}: {path} does not fit this architecture ({err}); check 'variant' and the "
            "size overrides against the checkpoint"
        ) from err


class SamImageEncoder(Backbone, ReferencedWeights):
    """Run SAM's frozen ViT image encoder block by block, adding its absolute pos_embed.

    Input ``batch["image"]``: ``(B, 3, img_size, img_size)``, SAM-normalised and padded (see
    :func:`asklepios_tpdrseg.preprocess.sam_preprocess`). Output ``features`` (alias
    ``image_embeddings``): the neck output ``(B, out_chans, h, w)`` with ``h = img_size / 16``.

    Raises:
        WeightsError: neither ``checkpoint`` nor ``random_init``, or weights that do not fit.
    """

    block_hook: BlockHook | None = None

    def __init__(self, params: SamImageEncoderParams, ctx: BuildContext) -> None:
        super().__init__()
        from segment_anything.modeling import ImageEncoderViT

        size = VARIANTS[params.variant]
        self.params = params
        self.embed_dim = params.embed_dim or size["embed_dim"]
        depth = params.depth or size["depth"]
        global_blocks = params.global_attn_indexes
        if global_blocks is None:
            global_blocks = size["global"] if params.depth is None else [depth - 1]
        if any(not 0 <= i < depth for i in global_blocks):
            raise ComponentError(
                f"tpdrseg.sam_encoder: global_attn_indexes {global_blocks} outside 0..{depth - 1}"
            )
        if params.img_size % params.patch_size:
            raise ComponentError(
                f"tpdrseg.sam_encoder: img_size {params.img_size} is not a multiple of "
                f"patch_size {params.patch_size}"
            )
        self.grid = params.img_size // params.patch_size
        self.encoder = ImageEncoderViT(
            img_size=params.img_size,
            patch_size=params.patch_size,
            embed_dim=self.embed_dim,
            depth=depth,
            num_heads=params.num_heads or size["num_heads"],
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(global_blocks),
            window_size=params.window_size,
            out_chans=params.out_chans,
        )
        self.out_chans = params.out_chans
        self.feature_dim = params.out_chans
        if params.checkpoint and is_meta(self.encoder):
            pass  # a shape-only skeleton (validate --deep): the file is checked, not read
        elif params.checkpoint:
            where = "tpdrseg.sam_encoder"
            state = read_sam_checkpoint(params.checkpoint, "image_encoder.", where)
            _load_strict(self.encoder, state, params.checkpoint, where)
        elif not params.random_init:
            raise WeightsError(
                "tpdrseg.sam_encoder: no weights: set 'checkpoint' to a local SAM checkpoint "
                "(e.g. sam_vit_b_01ec64.pth); 'random_init: true' is for tests and smoke runs"
            )
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(False)
        self.encoder.eval()
        if params.checkpoint and not is_meta(self.encoder):
            names = [f"encoder.{n}" for n, _ in self.encoder.named_parameters()]
            self.reference_weights(names, params.checkpoint)

    @property
    def num_blocks(self) -> int:
        """Return the number of ViT blocks."""
        return len(self.encoder.blocks)

    def train(self, mode: bool = True) -> SamImageEncoder:
        """Set training mode; the frozen encoder itself stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def set_block_hook(self, hook: BlockHook | None) -> None:
        """Run ``hook(i, x, batch)`` after every block ``i`` (``None`` removes it)."""
        self.block_hook = hook

    def encode(self, image: Tensor, batch: Mapping[str, Any] | None = None) -> Tensor:
        """Return the image embedding ``(B, out_chans, h, w)`` of SAM-normalised ``image``."""
        expected = self.params.img_size
        if (
            image.dim() != 4
            or image.shape[1] != 3
            or tuple(image.shape[-2:])
            != (
                expected,
                expected,
            )
        ):
            raise ComponentError(
                f"tpdrseg.sam_encoder: expects (B, 3, {expected}, {expected}) SAM-preprocessed "
                f"images, got {tuple(image.shape)}; use tpdrseg.fundus_lesions (or "
                "asklepios_tpdrseg.preprocess.sam_preprocess) with image_size "
                f"{expected}, or set img_size"
            )
        encoder = self.encoder
        x = encoder.patch_embed(image)
        if encoder.pos_embed is not None:
            x = x + encoder.pos_embed
        hook = self.block_hook
        for index, block in enumerate(encoder.blocks):
            x = block(x)
            if hook is not None:
                x = hook(index, x, batch or {})
        return encoder.neck(x.permute(0, 3, 1, 2))

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        embedding = self.encode(batch["image"], batch)
        return {"features": embedding, "image_embeddings": embedding}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return SAM-sized random images."""
        gen = torch.Generator().manual_seed(0)
        size = self.params.img_size
        return {"image": torch.randn(batch_size, 3, size, size, generator=gen)}


def find_encoder(model: nn.Module, who: str) -> SamImageEncoder:
    """Return the one :class:`SamImageEncoder` inside ``model``.

    Raises:
        ComponentError: there is none (the adapter was put on another backbone) or several.
    """
    found = [m for m in model.modules() if isinstance(m, SamImageEncoder)]
    if len(found) != 1:
        raise ComponentError(
            f"{who} needs exactly one tpdrseg.sam_encoder in the model it wraps, found "
            f"{len(found)}; use 'model.backbone: {{type: tpdrseg.sam_encoder}}' and list "
            "tpdrseg adapters after it"
        )
    return found[0]


def sam_example_batch(
    model: nn.Module | None, ctx: BuildContext, batch_size: int
) -> dict[str, Any]:
    """Return a tiny batch for a tpdrseg model: SAM-sized images, lesion indices, masks."""
    size = 32
    for module in (model or nn.Identity()).modules():
        if isinstance(module, SamImageEncoder):
            size = module.params.img_size
    lesions = len(ctx.data.extras.get("lesions") or ("MA", "HE", "EX", "SE"))
    gen = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(batch_size, 3, size, size, generator=gen),
        "lesion": torch.arange(batch_size) % lesions,
        "mask": (torch.rand(batch_size, 1, size, size, generator=gen) > 0.9).to(torch.uint8),
    }
