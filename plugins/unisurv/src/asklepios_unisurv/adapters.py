"""UniSurv's token makers as adapters (``unisurv.static_tokenizer``, ``unisurv.chunk_cnn``).

Both wrap a model and add time tokens ``(B, T_max, D)`` to its output under ``tokens`` (stating
their width as ``token_dim``), leaving ``logits`` and ``features`` unchanged;
``unisurv.pdf_head`` then runs the time-token Transformer on them. They reuse the modules of
``unisurv.transformer`` (:class:`StaticTokenizer`, :class:`ChunkCNN`), so
``adapters: [unisurv.static_tokenizer, unisurv.chunk_cnn, unisurv.pdf_head]`` over a feature
extractor that returns its input computes what ``unisurv.transformer`` with ``longitudinal: true``
computes (CNN features first, then the static tokens, as in the original).
"""

from __future__ import annotations

from typing import Any

import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.components import Adapter, Batch
from torch import Tensor, nn

from asklepios_unisurv.params import ChunkCNNAdapterParams, StaticTokenizerAdapterParams
from asklepios_unisurv.transformer import ChunkCNN, StaticTokenizer, check_tokens, resolve_t_max

__all__ = ["ChunkCNNAdapter", "StaticTokenizerAdapter"]


def _attach(
    adapter: StaticTokenizerAdapter | ChunkCNNAdapter, model: nn.Module, own_dim: int
) -> int:
    """Record the wrapped model's token and feature widths on ``adapter``; return its tokens'."""
    inner = int(getattr(model, "token_dim", 0) or 0)
    adapter.token_dim = inner + own_dim
    adapter.feature_dim = int(getattr(model, "feature_dim", 0) or 0)
    return inner


def _join(
    out: dict[str, Any], own: Tensor, inner_dim: int, t_max: int, component: str, *, first: bool
) -> dict[str, Any]:
    """Put ``own`` tokens before (``first``) or after the wrapped model's ones in ``out``."""
    if inner_dim:
        inner = check_tokens(out, t_max, component)
        own = torch.cat([own, inner] if first else [inner, own], dim=-1)
    out["tokens"] = own
    return out


class StaticTokenizerAdapter(Adapter):
    """Turn any feature extractor's features into UniSurv time tokens (fc + ReLU, every bin).

    The wrapped model's ``features`` ``(B, D)`` become ``tokens`` ``(B, T_max, D)`` =
    ``ReLU(fc(features))`` copied to every bin, appended after tokens the wrapped model already
    makes; ``t_max`` defaults to the dataset's. The positional encoding is added by the time-token
    Transformer of ``unisurv.pdf_head``, after its input embedding (as in the original).
    """

    token_dim: int
    feature_dim: int

    def __init__(self, params: StaticTokenizerAdapterParams, ctx: BuildContext) -> None:
        t_max = resolve_t_max(params.t_max, ctx, "unisurv.static_tokenizer")
        super().__init__()
        self.t_max = t_max

    def wrap(self, model: nn.Module) -> nn.Module:
        dim = int(getattr(model, "feature_dim", 0) or 0)
        if dim <= 0:
            raise ComponentError(
                f"unisurv.static_tokenizer needs a model with a positive feature_dim, "
                f"{type(model).__name__} has {dim}: put it after a feature extractor backbone"
            )
        self.tokenizer = StaticTokenizer(dim, self.t_max)
        self.inner_dim = _attach(self, model, dim)
        return super().wrap(model)

    def forward(self, batch: Batch) -> dict[str, Any]:
        out = dict(self.model(batch))
        own = self.tokenizer(out["features"])
        return _join(out, own, self.inner_dim, self.t_max, "unisurv.static_tokenizer", first=False)


class ChunkCNNAdapter(Adapter):
    """Add UniSurv's longitudinal chunk-CNN features to the time tokens (for pdf_head).

    ``batch["longitudinal"]`` ``(B, C, T_max, W)`` is cut into chunks of ``P`` rows, each encoded
    by one shared ``Conv2d(C→1, (3, 10), stride (1, 5))`` + ReLU and repeated over its ``P`` bins;
    these features go before the tokens the wrapped model already makes (as in the original).
    ``t_max`` defaults to the dataset's.

    Raises:
        ComponentError: ``time_period`` does not divide ``t_max``, or ``t_max`` disagrees with
            the dataset's.
    """

    token_dim: int
    feature_dim: int

    def __init__(self, params: ChunkCNNAdapterParams, ctx: BuildContext) -> None:
        t_max = resolve_t_max(params.t_max, ctx, "unisurv.chunk_cnn")
        if t_max % params.time_period:
            raise ComponentError(
                f"unisurv.chunk_cnn: time_period ({params.time_period}) must divide t_max ({t_max})"
            )
        super().__init__()
        self.t_max = t_max
        self.params = params
        self.cnn = ChunkCNN(params.in_channels, params.width, params.time_period)

    def wrap(self, model: nn.Module) -> nn.Module:
        self.inner_dim = _attach(self, model, self.cnn.out_features)
        return super().wrap(model)

    def forward(self, batch: Batch) -> dict[str, Any]:
        out = dict(self.model(batch))
        image = batch.get("longitudinal")
        p = self.params
        expected = (p.in_channels, self.t_max, p.width)
        if not isinstance(image, Tensor) or image.dim() != 4 or tuple(image.shape[1:]) != expected:
            got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ComponentError(
                f"unisurv.chunk_cnn expects batch['longitudinal'] of shape (B, {p.in_channels}, "
                f"{self.t_max}, {p.width}) = (B, C, T_max, W), got {got}; "
                "set in_channels / width / t_max to the dataset's"
            )
        like = out.get("features")
        dtype = like.dtype if isinstance(like, Tensor) else self.cnn.conv.weight.dtype
        own = self.cnn(image.to(dtype))
        return _join(out, own, self.inner_dim, self.t_max, "unisurv.chunk_cnn", first=True)

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return the kit's batch plus a random longitudinal image ``(B, C, T_max, W)``."""
        batch = super().example_batch(ctx, batch_size)
        gen = torch.Generator().manual_seed(3)
        shape = (batch_size, self.params.in_channels, self.t_max, self.params.width)
        batch["longitudinal"] = torch.rand(shape, generator=gen)
        return batch
