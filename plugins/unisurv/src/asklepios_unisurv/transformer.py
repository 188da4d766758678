"""The time-token Transformer of UniSurv (``unisurv.transformer``, ``unisurv.pdf_head``).

One token per time bin: each token carries the subject's static features (``fc`` + ReLU, copied to
every bin) and, for longitudinal data, a CNN feature of its time chunk; a pre-norm Transformer
encoder and a per-token head give one logit per bin. UniSurv ``modules/Encoder.py`` (commit
``7eda798``), ``EncoderLayer.py``, ``MultiHeadedAttention.py``, ``PositionwiseFeedForward.py``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.components import Adapter, Backbone, Batch, example_batch
from torch import Tensor, nn

from asklepios_unisurv.params import (
    PDFHeadAdapterParams,
    TimeTokenTransformerParams,
    UniSurvBackboneParams,
)

__all__ = [
    "ChunkCNN",
    "OriginalLayerNorm",
    "PDFHeadAdapter",
    "StaticTokenizer",
    "TimeTokenTransformer",
    "UniSurvBackbone",
    "check_tokens",
    "resolve_t_max",
]


class OriginalLayerNorm(nn.Module):
    """Normalise as the reference code: ``gamma (x - mean) / (std + eps) + beta``, unbiased std."""

    def __init__(self, features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))
        self.bias = nn.Parameter(torch.zeros(features))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(-1, keepdim=True)
        std = x.std(-1, keepdim=True)
        return self.weight * (x - mean) / (std + self.eps) + self.bias


def _norm(kind: str, features: int) -> nn.Module:
    return OriginalLayerNorm(features) if kind == "original" else nn.LayerNorm(features, eps=1e-6)


def _sinusoid(length: int, d_model: int) -> Tensor:
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * div)
    table[:, 1::2] = torch.cos(position * div)
    return table


class _Attention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(d_model, d_model) for _ in range(4))
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, d = x.shape

        def split(t: Tensor) -> Tensor:
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        attn_mask = None if mask is None else mask[:, None, None, :].to(torch.bool)
        y = F.scaled_dot_product_attention(
            split(self.q(x)),
            split(self.k(x)),
            split(self.v(x)),
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class _Layer(nn.Module):
    def __init__(self, p: TimeTokenTransformerParams) -> None:
        super().__init__()
        self.norm1 = _norm(p.layernorm, p.d_model)
        self.attn = _Attention(p.d_model, p.num_heads, p.dropout)
        self.norm2 = _norm(p.layernorm, p.d_model)
        self.ff = nn.Sequential(
            nn.Linear(p.d_model, p.d_ff),
            nn.ReLU(),
            nn.Dropout(p.dropout),
            nn.Linear(p.d_ff, p.d_model),
        )
        self.drop = nn.Dropout(p.dropout)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), mask))
        return x + self.drop(self.ff(self.norm2(x)))


class TimeTokenTransformer(nn.Module):
    """Map tokens ``(B, T_max, D_in)`` to per-bin logits ``(B, T_max)`` and encodings."""

    def __init__(self, d_in: int, t_max: int, p: TimeTokenTransformerParams) -> None:
        super().__init__()
        self.t_max = t_max
        self.embed = nn.Linear(d_in, p.d_model)
        self.embed_norm = _norm(p.layernorm, p.d_model)
        self.register_buffer("position", _sinusoid(t_max, p.d_model), persistent=False)
        self.drop = nn.Dropout(p.dropout)
        self.layers = nn.ModuleList(_Layer(p) for _ in range(p.num_layers))
        self.norm = _norm(p.layernorm, p.d_model) if p.final_norm else None
        half = p.d_model // 2
        self.head = nn.Sequential(
            nn.Linear(p.d_model, half), nn.ReLU(), _norm(p.layernorm, half), nn.Linear(half, 1)
        )

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Return ``(logits (B, T_max), encoded tokens (B, T_max, d_model))``."""
        x = self.drop(self.embed_norm(self.embed(tokens)) + self.position.to(tokens.dtype))
        for layer in self.layers:
            x = layer(x, mask)
        if self.norm is not None:
            x = self.norm(x)
        return self.head(x).squeeze(-1), x


class ChunkCNN(nn.Module):
    """Encode ``(B, C, T_max, W)`` in chunks of ``P`` rows with one shared conv; repeat per bin."""

    def __init__(self, in_channels: int, width: int, period: int) -> None:
        super().__init__()
        self.period = period
        self.conv = nn.Conv2d(in_channels, 1, kernel_size=(3, 10), stride=(1, 5))
        self.out_features = (period - 2) * ((width - 10) // 5 + 1)

    def forward(self, image: Tensor) -> Tensor:
        b, c, t, w = image.shape
        chunks = t // self.period
        x = image.reshape(b, c, chunks, self.period, w).transpose(1, 2)
        feats = F.relu(self.conv(x.reshape(b * chunks, c, self.period, w))).reshape(b, chunks, -1)
        return feats.repeat_interleave(self.period, dim=1)


class StaticTokenizer(nn.Module):
    """Copy ``ReLU(fc(x))`` to every time bin: features ``(B, F)`` -> tokens ``(B, T_max, F)``.

    UniSurv's static tokeniser; the positional encoding is added by
    :class:`TimeTokenTransformer` after its input embedding, as in the original.
    """

    def __init__(self, in_features: int, t_max: int) -> None:
        super().__init__()
        self.t_max = t_max
        self.fc = nn.Linear(in_features, in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc(x)).unsqueeze(1).expand(-1, self.t_max, -1)


class UniSurvBackbone(Backbone):
    """Predict a discrete event-time density with UniSurv's time-token Transformer.

    ``batch["image"]`` holds static features ``(B, F)``; with ``longitudinal`` on,
    ``batch["longitudinal"]`` holds ``(B, C, T_max, W)``. Returns ``logits`` ``(B, T_max)`` and
    ``features``, the token encodings averaged over time ``(B, d_model)``. The static-only model
    (no CNN branch) is reconstructed from the code: the released code always needs the image.
    ``t_max`` and ``in_features`` default to the dataset's facts (``extras["t_max"]``,
    ``num_features``).

    Raises:
        ComponentError: ``t_max`` disagrees with the dataset's, ``time_period`` does not divide
            it, or the width of the static features is unknown.
    """

    def __init__(self, params: UniSurvBackboneParams, ctx: BuildContext) -> None:
        t_max = resolve_t_max(params.t_max, ctx, "unisurv.transformer")
        if params.longitudinal and t_max % params.time_period:
            raise ComponentError(
                f"unisurv.transformer: time_period ({params.time_period}) must divide t_max "
                f"({t_max})"
            )
        in_features = params.in_features or ctx.data.num_features
        if in_features is None:
            raise ComponentError(
                "unisurv.transformer: the dataset does not state num_features; set in_features"
            )
        super().__init__()
        self.params = params
        self.t_max = t_max
        self.in_features = int(in_features)
        self.tokenizer = StaticTokenizer(self.in_features, t_max)
        self.cnn = (
            ChunkCNN(params.in_channels, params.width, params.time_period)
            if params.longitudinal
            else None
        )
        d_in = self.in_features + (self.cnn.out_features if self.cnn is not None else 0)
        self.encoder = TimeTokenTransformer(d_in, t_max, params)
        self.feature_dim = params.d_model

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        x = batch["image"]
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ComponentError(
                f"unisurv.transformer expects batch['image'] of shape (B, {self.in_features}), "
                f"got {tuple(x.shape)}; set in_features or check the dataset's features"
            )
        tokens = self.tokenizer(x)
        if self.cnn is not None:
            image = batch["longitudinal"].to(x.dtype)
            if image.shape[2] != self.t_max:
                raise ComponentError(
                    f"batch['longitudinal'] has {image.shape[2]} time rows, expected t_max = "
                    f"{self.t_max}: shape (B, C, T_max, W)"
                )
            tokens = torch.cat([self.cnn(image), tokens], dim=-1)
        mask = batch.get("mask") if self.params.use_mask else None
        logits, encoded = self.encoder(tokens, mask)
        return {"logits": logits, "features": encoded.mean(1)}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return static features (and a longitudinal image when enabled) plus survival labels."""
        facts = ctx.data.replace(task="survival", num_features=self.in_features, image_size=None)
        batch = example_batch(ctx.replace(data=facts), batch_size)
        gen = torch.Generator().manual_seed(3)
        batch["time"] = torch.randint(0, self.t_max, (batch_size,), generator=gen).float()
        if self.cnn is not None:
            p = self.params
            shape = (batch_size, p.in_channels, self.t_max, p.width)
            batch["longitudinal"] = torch.rand(shape, generator=gen)
        return batch


def resolve_t_max(requested: int | None, ctx: BuildContext, component: str) -> int:
    """Return the time-bin count: ``requested``, else the dataset's ``t_max``, else 96."""
    from_data = ctx.data.extras.get("t_max")
    if requested is not None and from_data is not None and int(from_data) != requested:
        raise ComponentError(
            f"{component}: t_max = {requested} but the dataset bins time into {from_data} bins; "
            f"drop t_max from the model (it follows the dataset) or set t_max: {from_data}"
        )
    return int(requested or from_data or 96)


class PDFHeadAdapter(Adapter):
    """Add a UniSurv discrete-time density head on top of any backbone's features.

    It turns features into ``T_max`` density logits via time tokens: the wrapped model's
    ``features`` ``(B, D)`` go through UniSurv's static tokeniser (``fc`` + ReLU, copied to every
    bin) and the time-token Transformer; the output replaces ``logits`` and keeps the inner
    ``features``. When the wrapped model already makes time tokens (it was wrapped by
    ``unisurv.static_tokenizer`` and/or ``unisurv.chunk_cnn``, which state ``token_dim``), the
    Transformer reads its ``tokens`` ``(B, T_max, token_dim)`` instead and consumes them.
    ``t_max`` defaults to the dataset's.
    """

    def __init__(self, params: PDFHeadAdapterParams, ctx: BuildContext) -> None:
        t_max = resolve_t_max(params.t_max, ctx, "unisurv.pdf_head")
        super().__init__()
        self.t_max = t_max
        self.params = params

    def wrap(self, model: nn.Module) -> nn.Module:
        dim = int(getattr(model, "feature_dim", 0))
        token_dim = int(getattr(model, "token_dim", 0) or 0)
        if dim <= 0 and token_dim <= 0:
            raise ComponentError(
                f"unisurv.pdf_head needs a model with a positive feature_dim (or time tokens from "
                f"unisurv.static_tokenizer / unisurv.chunk_cnn), {type(model).__name__} has {dim}"
            )
        self.tokenizer = None if token_dim > 0 else StaticTokenizer(dim, self.t_max)
        self.encoder = TimeTokenTransformer(token_dim or dim, self.t_max, self.params)
        self.feature_dim = dim
        return super().wrap(model)

    def forward(self, batch: Batch) -> dict[str, Any]:
        out = dict(self.model(batch))
        if self.tokenizer is None:
            tokens = check_tokens(out, self.t_max, "unisurv.pdf_head")
            del out["tokens"]
        else:
            tokens = self.tokenizer(out["features"])
        mask = batch.get("mask") if self.params.use_mask else None
        out["logits"], _ = self.encoder(tokens, mask)
        return out


def check_tokens(out: dict[str, Any], t_max: int, component: str) -> Tensor:
    """Return ``out["tokens"]`` after checking it is ``(B, t_max, D)``, else raise clearly."""
    tokens = out.get("tokens")
    if not isinstance(tokens, Tensor) or tokens.dim() != 3 or tokens.shape[1] != t_max:
        got = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ComponentError(
            f"{component}: the wrapped model states token_dim but its output 'tokens' is {got}, "
            f"expected (B, {t_max}, token_dim); every unisurv adapter must use the same t_max"
        )
    return tokens
