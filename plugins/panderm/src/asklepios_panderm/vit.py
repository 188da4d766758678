"""The PanDerm ViT encoder (BEiT/CAE blocks, fixed 2-D sin-cos positions) and ``panderm.vit``.

Two implementations share one parameter layout and one init (spec §2.2):

- :class:`TimmPanDermEncoder`, timm's ``VisionTransformer`` (fused attention) with PanDerm's fixed
  position table. It is exact where PanDerm's blocks and timm's agree: ``q_bias``/``v_bias`` are
  timm's ``qkv.bias`` with a zero key slot, ``gamma_1/2`` are ``ls1/ls2.gamma``;
- :class:`PanDermEncoder`, this plugin's own blocks under the checkpoint's key names, with the
  optional per-block relative position bias of fine-tuning and dropout after ``fc2`` only.

``impl: auto`` takes timm unless the native blocks are needed. The test suite proves both equal.

References:
    Yan et al., "A multimodal vision foundation model for clinical dermatology", Nature Medicine
    2025 (arXiv 2410.15038); code github.com/SiyuanYan1/PanDerm
    (``classification/models/modeling_finetune.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, cast

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError, example_batch
from timm.layers import DropPath, PatchEmbed, trunc_normal_
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from asklepios_panderm.params import PanDermViTParams, _EncoderParams

__all__ = [
    "VARIANTS",
    "PanDermEncoder",
    "PanDermViT",
    "TimmPanDermEncoder",
    "build_encoder",
    "encoder_dims",
    "layer_id",
    "relative_position_index",
    "sincos_pos_embed",
]

VARIANTS: dict[str, tuple[int, int, int]] = {"large": (1024, 24, 16), "base": (768, 12, 12)}
"""``variant -> (embed_dim, depth, num_heads)`` of the released models (§2.1)."""

_LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def sincos_pos_embed(grid: tuple[int, int], dim: int, temperature: float = 10000.0) -> Tensor:
    """Return PanDerm's fixed position table ``[1, 1 + h*w, dim]`` with a zero CLS slot.

    The patch at row ``r``, column ``c`` (sequence index ``1 + r*w + c``) gets
    ``[sin(r w), cos(r w), sin(c w), cos(c w)]`` with ``w_i = temperature^(-i / (dim/4))``: the
    row fills the first half (§2.2).
    """
    if dim % 4:
        raise ComponentError(f"panderm: embed_dim {dim} must be divisible by 4 (2-D sin-cos)")
    rows, cols = torch.meshgrid(
        torch.arange(grid[0], dtype=torch.float32),
        torch.arange(grid[1], dtype=torch.float32),
        indexing="ij",
    )
    pos_dim = dim // 4
    omega = 1.0 / temperature ** (torch.arange(pos_dim, dtype=torch.float32) / pos_dim)
    out_r = rows.flatten()[:, None] * omega[None]
    out_c = cols.flatten()[:, None] * omega[None]
    table = torch.cat([out_r.sin(), out_r.cos(), out_c.sin(), out_c.cos()], dim=1)
    return torch.cat([torch.zeros(1, dim), table])[None]


def relative_position_index(grid: tuple[int, int]) -> Tensor:
    """Return BEiT's ``[1 + N, 1 + N]`` index into a ``(2h-1)(2w-1) + 3`` row bias table.

    The last three rows are cls->token, token->cls and cls->cls.
    """
    h, w = grid
    coords = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += h - 1
    rel[:, :, 1] += w - 1
    rel[:, :, 0] *= 2 * w - 1
    distances = (2 * h - 1) * (2 * w - 1) + 3
    index = torch.zeros(h * w + 1, h * w + 1, dtype=torch.long)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:] = distances - 3
    index[0:, 0] = distances - 2
    index[0, 0] = distances - 1
    return index


class Attention(nn.Module):
    """Multi-head self-attention with bias-free qkv plus separate q and v biases (k bias = 0)."""

    relative_position_index: Tensor

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ComponentError(f"panderm: embed_dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.relative_position_bias_table: nn.Parameter | None = None
        if grid is not None:
            rows = (2 * grid[0] - 1) * (2 * grid[1] - 1) + 3
            self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))
            self.register_buffer(
                "relative_position_index", relative_position_index(grid), persistent=False
            )

    def relative_bias(self) -> Tensor | None:
        """Return the ``[heads, 1 + N, 1 + N]`` relative position bias, or ``None``."""
        table = self.relative_position_bias_table
        if table is None:
            return None
        size = self.relative_position_index.shape[0]
        bias = table[self.relative_position_index.view(-1)].view(size, size, -1)
        return bias.permute(2, 0, 1).contiguous()

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        qkv = qkv.reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        rel = self.relative_bias()
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=None if rel is None else rel.unsqueeze(0).to(q.dtype),
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        out = out.transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj_drop(self.proj(out))


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` with dropout after ``fc2`` only, as in PanDerm."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Block(nn.Module):
    """Apply attention then MLP, pre-norm, each scaled by LayerScale (``gamma_1``, ``gamma_2``)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        init_values: float,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        grid: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = _LayerNorm(dim)
        self.attn = Attention(dim, num_heads, attn_drop, drop, grid)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = _LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        return x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))


class PanDermEncoder(nn.Module):
    """PanDerm's encoder under the checkpoint's key names (after stripping ``encoder.``).

    ``pool='mean'`` makes ``norm`` the identity and adds ``fc_norm`` over the mean of the patch
    tokens; ``rel_pos_bias`` gives every block a zero-initialised relative position bias.
    """

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        init_values: float,
        drop_rate: float,
        attn_drop_rate: float,
        drop_path_rate: float,
        pool: str,
        rel_pos_bias: bool = False,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        grid = (int(self.patch_embed.grid_size[0]), int(self.patch_embed.grid_size[1]))
        self.grid = grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(sincos_pos_embed(grid, embed_dim), requires_grad=False)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [float(r) for r in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                init_values,
                drop_rate,
                attn_drop_rate,
                rate,
                grid if rel_pos_bias else None,
            )
            for rate in rates
        )
        self.norm: nn.Module = nn.Identity() if pool == "mean" else _LayerNorm(embed_dim)
        self.fc_norm: nn.Module | None = _LayerNorm(embed_dim) if pool == "mean" else None
        self.pool = pool

    def _tokens(self, x: Tensor, indices: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + self.pos_embed)
        taken = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in indices:
                taken.append(x)
        return x, taken

    def forward_features(self, x: Tensor) -> Tensor:
        """Return every token after the last block and the final norm, ``[B, 1 + N, D]``."""
        return self.norm(self._tokens(x)[0])

    def pooled(self, x: Tensor) -> Tensor:
        """Return the CLS feature, or ``fc_norm`` of the mean patch token (``pool='mean'``)."""
        tokens = self.forward_features(x)
        if self.fc_norm is None:
            return tokens[:, 0]
        return self.fc_norm(tokens[:, 1:].mean(dim=1))

    def intermediates(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """Return the final-normed patch tokens after blocks ``indices`` as ``[B, D, h, w]``."""
        _, taken = self._tokens(x, indices)
        h, w = self.grid
        return [
            self.norm(t)[:, 1:].transpose(1, 2).reshape(t.shape[0], -1, h, w).contiguous()
            for t in taken
        ]


class TimmPanDermEncoder(VisionTransformer):
    """timm's ``VisionTransformer`` with PanDerm's frozen 2-D sin-cos table and init.

    Exact for PanDerm's blocks without relative position bias (q/v bias = ``qkv.bias`` with a
    zero key slot, which has no effect on softmax attention; ``gamma_*`` = ``ls*.gamma``).
    """

    def pooled(self, x: Tensor) -> Tensor:
        """Return the CLS feature, or ``fc_norm`` of the mean patch token (``pool='mean'``)."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def intermediates(self, x: Tensor, indices: Sequence[int]) -> list[Tensor]:
        """Return the final-normed patch tokens after blocks ``indices`` as ``[B, D, h, w]``."""
        out = self.forward_intermediates(
            x, indices=list(indices), norm=True, output_fmt="NCHW", intermediates_only=True
        )
        return cast(list[Tensor], out)


def encoder_dims(params: _EncoderParams) -> tuple[int, int, int]:
    """Return ``(embed_dim, depth, num_heads)``: the variant's, overridden field by field."""
    dim, depth, heads = VARIANTS[params.variant]
    return (
        params.embed_dim if params.embed_dim is not None else dim,
        params.depth if params.depth is not None else depth,
        params.num_heads if params.num_heads is not None else heads,
    )


def _init_panderm(encoder: Any, blocks: Sequence[Any]) -> None:
    """Apply PanDerm's init: trunc-normal 0.02 linears, unit LayerNorms, proj/fc2 / sqrt(2l)."""
    for module in encoder.modules():
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    trunc_normal_(encoder.cls_token, std=0.02)
    for depth, block in enumerate(blocks, start=1):
        block.attn.proj.weight.data.div_(math.sqrt(2.0 * depth))
        block.mlp.fc2.weight.data.div_(math.sqrt(2.0 * depth))


def build_encoder(params: _EncoderParams, pool: str, rel_pos_bias: bool = False) -> nn.Module:
    """Build the encoder ``params`` describe, randomly initialised the PanDerm way.

    Returns a :class:`TimmPanDermEncoder` or a :class:`PanDermEncoder`; both have ``pooled(x)``,
    ``intermediates(x, indices)``, ``blocks``, ``cls_token`` and a frozen ``pos_embed``.
    """
    dim, depth, heads = encoder_dims(params)
    impl = params.impl
    if impl == "auto":
        impl = "native" if rel_pos_bias or params.drop_rate > 0 else "timm"
    if dim % heads:
        raise ComponentError(f"panderm: embed_dim {dim} is not divisible by num_heads {heads}")
    encoder: Any
    if impl == "timm":
        encoder = TimmPanDermEncoder(
            img_size=params.img_size,
            patch_size=params.patch_size,
            in_chans=params.in_chans,
            num_classes=0,
            global_pool="avg" if pool == "mean" else "token",
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            mlp_ratio=params.mlp_ratio,
            qkv_bias=True,
            init_values=params.init_values,
            class_token=True,
            attn_drop_rate=params.attn_drop_rate,
            drop_path_rate=params.drop_path_rate,
            norm_layer=_LayerNorm,
        )
        grid = tuple(int(g) for g in encoder.patch_embed.grid_size)
        with torch.no_grad():
            encoder.pos_embed.copy_(sincos_pos_embed((grid[0], grid[1]), dim))
    else:
        encoder = PanDermEncoder(
            img_size=params.img_size,
            patch_size=params.patch_size,
            in_chans=params.in_chans,
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            mlp_ratio=params.mlp_ratio,
            init_values=params.init_values,
            drop_rate=params.drop_rate,
            attn_drop_rate=params.attn_drop_rate,
            drop_path_rate=params.drop_path_rate,
            pool=pool,
            rel_pos_bias=rel_pos_bias,
        )
    encoder.pos_embed.requires_grad_(False)
    _init_panderm(encoder, list(encoder.blocks))
    return cast(nn.Module, encoder)


def layer_id(name: str, num_layers: int) -> int:
    """Return the layer-decay id of a parameter name of a PanDerm model (§6.4).

    ``0`` for the patch embedding, ``cls_token``, ``pos_embed`` and ``mask_token``; ``i + 1`` for
    ``blocks.i``; ``num_layers + 1`` for everything else (head, ``fc_norm``, decoder). An
    ``encoder.`` (or ``model.``) prefix is ignored.
    """
    parts = name.split(".")
    while parts and parts[0] in ("encoder", "model", "module"):
        parts = parts[1:]
    if not parts:
        return num_layers + 1
    if parts[0] in ("cls_token", "mask_token", "pos_embed") or parts[0] == "patch_embed":
        return 0
    if parts[0] == "blocks" and len(parts) > 1 and parts[1].isdigit():
        return int(parts[1]) + 1
    return num_layers + 1


class PanDermViT(Backbone):
    """Encode images with the PanDerm ViT-L/16 or B/16; CLS or mean-pool features, a head.

    ``features`` is the CLS token after the final norm (``pool: cls``, the linear-probe feature)
    or ``fc_norm`` of the mean patch token (``pool: mean``, the fine-tuning feature); ``logits``
    is the head's output, or the features themselves with ``num_classes: 0`` (timm's convention).
    Weights: ``panderm.checkpoint`` (adapter) loads the released checkpoint.
    """

    encoder: Any  # PanDermEncoder or TimmPanDermEncoder

    def __init__(self, params: PanDermViTParams, ctx: BuildContext) -> None:
        super().__init__()
        num_classes = params.num_classes if params.num_classes is not None else ctx.data.num_classes
        if num_classes is None:
            raise ComponentError(
                "panderm.vit: the dataset states no number of classes; set it, e.g. "
                "--set model.backbone.num_classes=7 (0 for features only)"
            )
        self.params = params
        self.encoder = build_encoder(params, params.pool, params.rel_pos_bias)
        self.impl = "timm" if isinstance(self.encoder, TimmPanDermEncoder) else "native"
        self.feature_dim = int(self.encoder.cls_token.shape[-1])
        self.num_layers = len(self.encoder.blocks)
        self.head: nn.Module = nn.Identity()
        self.reset_classifier(int(num_classes))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head: ``Linear(D, K)``, trunc-normal 0.02 times ``init_scale``."""
        if num_classes <= 0:
            self.head = nn.Identity()
            return
        head = nn.Linear(self.feature_dim, num_classes)
        trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        with torch.no_grad():
            head.weight.mul_(self.params.init_scale)
            head.bias.mul_(self.params.init_scale)
        self.head = head.to(self.encoder.cls_token.device)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        features = self.encoder.pooled(batch["image"])
        return {"features": features, "logits": self.head(features)}

    def layer_id(self, name: str) -> int:
        """Return the layer-decay id of parameter ``name`` (see :func:`layer_id`)."""
        return layer_id(name, self.num_layers)

    def no_weight_decay(self) -> set[str]:
        """Return the parameter names PanDerm exempts from weight decay by name."""
        return {"encoder.pos_embed", "encoder.cls_token"}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return images of this model's input size."""
        size = self.params.img_size
        facts = ctx.data.replace(image_size=(size, size), in_channels=self.params.in_chans)
        return example_batch(ctx.replace(data=facts), batch_size)
