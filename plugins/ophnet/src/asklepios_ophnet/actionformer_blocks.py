"""ActionFormer's building blocks: masked convs, channel LayerNorm, local attention, blocks.

Tensors are ``[B, C, T]`` with a ``[B, T]`` boolean mask (``True`` on real steps). Every block
zeroes padded steps of its output, and every LayerNorm output is masked too (the reference
leaves ``LN(0) = bias`` on padded steps, which its convs then read next to the last real
step), so a real step's output never depends on how far its batch is padded.

A downsampling block halves ``T`` to ``ceil(T / 2)`` (kernel 3, stride 2, padding 1; the
reference needs ``T`` divisible by every stride and pads each batch to ``max_seq_len``); the
mask of the coarser level is ``mask[:, ::2]``, the reference's nearest-neighbour resize.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ChannelNorm",
    "MaskedConv1d",
    "Scale",
    "TransformerBlock",
    "downsample_mask",
    "local_attention",
]


def downsample_mask(mask: Tensor, stride: int) -> Tensor:
    """Return the ``[B, ceil(T / stride)]`` mask of a level ``stride`` times coarser."""
    return mask[:, ::stride]


def _masked(x: Tensor, mask: Tensor) -> Tensor:
    return x * mask[:, None, :].to(x.dtype)


class MaskedConv1d(nn.Module):
    """A 1-D convolution (odd kernel, centred) whose output is zero on padded steps."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.stride = stride
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias
        )
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        out_mask = downsample_mask(mask, self.stride) if self.stride > 1 else mask
        return _masked(self.conv(x), out_mask), out_mask


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of ``[B, C, T]``, zero on padded steps."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return _masked(self.norm(x.transpose(1, 2)).transpose(1, 2), mask)


class Scale(nn.Module):
    """Multiply by a learnable scalar (one per pyramid level of the regression head)."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(value))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class AffineDropPath(nn.Module):
    """Scale channels by a learnable factor (init 1e-4), then drop whole items at random."""

    def __init__(self, channels: int, drop_prob: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, channels, 1), 1e-4))
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        x = self.scale * x
        if not self.training or self.drop_prob == 0:
            return x
        keep = 1 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        return x / keep * torch.bernoulli(x.new_full(shape, keep))


def local_attention(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor, window: int, dropout: float = 0.0
) -> Tensor:
    """Attend each step to the real steps within ``window // 2`` of it (global if ``window<=1``).

    Args:
        q, k, v: ``[B, H, T, D]`` (``q`` already scaled); mask: ``[B, T]`` real steps.
        window: ActionFormer's ``n_mha_win_size`` (keys at ``|i - j| <= window // 2``).
        dropout: dropout of the attention weights (pass 0 in eval mode).

    Returns:
        ``[B, H, T, D]``; zero on padded query steps. Computed in ``O(T * window)`` memory by
        shifting the keys, never as a ``T x T`` matrix (unless global).
    """
    lowest = torch.finfo(q.dtype).min
    steps = q.shape[2]
    half = window // 2
    if window <= 1 or half >= steps - 1:
        att = q @ k.transpose(-1, -2)
        att = att.masked_fill(~mask[:, None, None, :], lowest).softmax(dim=-1)
        att = F.dropout(att, dropout) if dropout > 0 else att
        return (att @ v) * mask[:, None, :, None].to(v.dtype)
    width = 2 * half + 1
    k_pad = F.pad(k, (0, 0, half, half))
    v_pad = F.pad(v, (0, 0, half, half))
    key_ok = F.pad(mask, (half, half), value=False).unfold(1, width, 1)  # [B, T, W]
    logits = torch.stack([(q * k_pad[:, :, j : j + steps]).sum(-1) for j in range(width)], -1)
    att = logits.masked_fill(~key_ok[:, None], lowest).softmax(dim=-1)
    att = att * mask[:, None, :, None].to(att.dtype)
    att = F.dropout(att, dropout) if dropout > 0 else att
    out = att[..., 0, None] * v_pad[:, :, :steps]
    for j in range(1, width):
        out = out + att[..., j, None] * v_pad[:, :, j : j + steps]
    return out


class LocalMaskedMHCA(nn.Module):
    """Multi-head self-attention with depthwise-conv q/k/v (downsampling) in a local window."""

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        stride: int,
        attn_dropout: float,
        proj_dropout: float,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.scale = 1.0 / math.sqrt(dim // heads)
        kernel = stride + 1 if stride > 1 else 3
        self.q_conv = MaskedConv1d(dim, dim, kernel, stride, groups=dim, bias=False)
        self.k_conv = MaskedConv1d(dim, dim, kernel, stride, groups=dim, bias=False)
        self.v_conv = MaskedConv1d(dim, dim, kernel, stride, groups=dim, bias=False)
        self.q_norm, self.k_norm, self.v_norm = ChannelNorm(dim), ChannelNorm(dim), ChannelNorm(dim)
        self.query = nn.Conv1d(dim, dim, 1)
        self.key = nn.Conv1d(dim, dim, 1)
        self.value = nn.Conv1d(dim, dim, 1)
        self.proj = nn.Conv1d(dim, dim, 1)
        self.attn_dropout = attn_dropout
        self.proj_drop = nn.Dropout(proj_dropout)

    def _heads(self, x: Tensor) -> Tensor:
        b, c, t = x.shape
        return x.view(b, self.heads, c // self.heads, t).transpose(2, 3)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        q, out_mask = self.q_conv(x, mask)
        k, _ = self.k_conv(x, mask)
        v, _ = self.v_conv(x, mask)
        q = self._heads(self.query(self.q_norm(q, out_mask))) * self.scale
        k = self._heads(self.key(self.k_norm(k, out_mask)))
        v = self._heads(self.value(self.v_norm(v, out_mask)))
        dropout = self.attn_dropout if self.training else 0.0
        out = local_attention(q, k, v, out_mask, self.window, dropout)
        b, h, t, d = out.shape
        out = out.transpose(2, 3).reshape(b, h * d, t)
        return _masked(self.proj_drop(self.proj(out)), out_mask), out_mask


class TransformerBlock(nn.Module):
    """A pre-LayerNorm transformer block on ``[B, C, T]``; stride 2 halves ``T``.

    ``out = pool(x) + droppath(attn(LN(x)))``, then ``out + droppath(mlp(LN(out)))``, where
    ``pool`` is a max-pool (kernel 3, stride 2) that ignores padded steps when downsampling.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        window: int,
        stride: int,
        mlp_ratio: int,
        attn_dropout: float,
        dropout: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.ln1, self.ln2 = ChannelNorm(dim), ChannelNorm(dim)
        self.attn = LocalMaskedMHCA(dim, heads, window, stride, attn_dropout, dropout)
        self.pool = nn.MaxPool1d(stride + 1, stride, (stride + 1) // 2) if stride > 1 else None
        self.mlp = nn.Sequential(
            nn.Conv1d(dim, mlp_ratio * dim, 1),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Conv1d(mlp_ratio * dim, dim, 1),
            nn.Dropout(dropout),
        )
        self.drop_attn = AffineDropPath(dim, drop_path)
        self.drop_mlp = AffineDropPath(dim, drop_path)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        attended, out_mask = self.attn(self.ln1(x, mask), mask)
        skip = x
        if self.pool is not None:
            lowest = torch.finfo(x.dtype).min
            skip = self.pool(x.masked_fill(~mask[:, None, :], lowest))
        out = _masked(skip, out_mask) + self.drop_attn(attended)
        mlp = _masked(self.mlp(self.ln2(out, out_mask)), out_mask)
        return out + self.drop_mlp(mlp), out_mask
