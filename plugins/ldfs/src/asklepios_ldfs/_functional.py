"""Pure tensor functions behind the LDFS components (formulas of the spec, vectorised).

Shapes: ``B`` batch, ``K`` target domains, ``M`` noise draws, ``C`` classes, ``S`` source prompt
sets, ``d`` feature width. Every function is differentiable where a loss needs it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "anchor_loss",
    "class_consistency_loss",
    "directional_loss",
    "diversity_loss",
    "instance_anchor_loss",
    "nn_self_loss",
    "normalize",
    "pairwise_similarity_loss",
    "select_source",
    "text_noise",
]


def normalize(x: Tensor, eps: float = 1e-8) -> Tensor:
    """Return ``x / (||x|| + eps)`` along the last dim (finite gradient at ``x = 0``)."""
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def text_noise(
    text: Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
    convention: Literal["norm_relative", "per_dimension"] = "norm_relative",
) -> Tensor:
    """Perturb unit text features: ``t_hat = normalise(t + sigma * eps)`` (reconstructed, §2.5).

    ``norm_relative`` (default): ``eps ~ N(0, I_d / d)``, so ``E||eps||^2 = 1`` and ``sigma`` is the
    noise-to-signal norm ratio. ``per_dimension`` (CapDec convention): ``eps ~ N(0, I_d)``, so
    ``sigma`` is the per-dimension standard deviation. ``sigma = 0`` returns ``text`` unchanged.
    """
    if sigma == 0:
        return text
    noise = torch.randn(text.shape, generator=generator, dtype=text.dtype).to(text.device)
    if convention == "norm_relative":
        noise = noise / math.sqrt(text.shape[-1])
    return F.normalize(text + sigma * noise, dim=-1)


def select_source(features: Tensor, source: Tensor, labels: Tensor) -> Tensor:
    """Pick per sample the source prompt of its class most similar to it (LADS ``j*``).

    Args:
        features: ``(B, d)`` unit image features.
        source: ``(S, C, d)`` source text features, one table per source prompt.
        labels: ``(B,)`` class ids.

    Returns:
        ``(B, d)``: ``source[j*_i, y_i]`` with ``j*_i = argmax_j f_i . source[j, y_i]``.
    """
    per_class = source[:, labels]  # (S, B, d)
    best = torch.einsum("bd,sbd->bs", features, per_class).argmax(dim=1)
    return per_class[best, torch.arange(labels.shape[0], device=labels.device)]


def directional_loss(
    real: Tensor,
    synthetic: Tensor,
    text_direction: Tensor,
    loss_type: Literal["cosine", "mse", "mae"] = "cosine",
    eps: float = 1e-8,
) -> Tensor:
    """StyleGAN-NADA / LADS directional loss between image and text displacements.

    ``df = normalise(synthetic - real)`` (``eps`` in the normaliser), ``dt = normalise(direction)``;
    ``cosine``: mean of ``1 - df . dt``; ``mse``/``mae``: mean squared/absolute difference of the
    unit directions over all elements. Inputs broadcast (``real`` ``(B, 1, d)`` against
    ``synthetic`` ``(B, K, d)``).
    """
    df = normalize(synthetic - real, eps)
    dt = normalize(text_direction, eps)
    if loss_type == "cosine":
        return (1.0 - (df * dt).sum(dim=-1)).mean()
    if loss_type == "mse":
        return (df - dt).pow(2).mean()
    return (df - dt).abs().mean()


def instance_anchor_loss(
    real: Tensor, synthetic: Tensor, text_direction: Tensor, eps: float = 1e-8
) -> Tensor:
    """Instance-specific anchor loss (``anchor: instance``, reconstructed).

    ``a_i = normalise(f_i + direction_i)``, loss ``mean(1 - cos(f~_i, a_i))``.
    """
    anchor = normalize(real + text_direction, eps)
    return (1.0 - (normalize(synthetic, eps) * anchor).sum(dim=-1)).mean()


def class_consistency_loss(
    synthetic: Tensor,
    class_text: Tensor,
    labels: Tensor,
    temperature: float | None = 0.01,
    class_weights: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of synthetic features against class text features.

    Args:
        synthetic: ``(B, K, d)`` synthetic features.
        class_text: ``(K, C, d)`` per-domain class text (or ``(1, C, d)`` shared).
        labels: ``(B,)`` class ids.
        temperature: logits are ``cos / temperature``; ``None`` = raw cosine logits (LADS).
        class_weights: ``(C,)`` CE weights (LADS: ``1 / count``); ``None`` = unweighted.
    """
    logits = torch.einsum("bkd,kcd->bkc", normalize(synthetic), class_text)
    if temperature is not None:
        logits = logits / temperature
    num_domains = synthetic.shape[1]
    targets = labels.repeat_interleave(num_domains)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, weight=class_weights)


def _off_diagonal_mean(values: Tensor) -> Tensor:
    size = values.shape[-1]
    mask = ~torch.eye(size, dtype=torch.bool, device=values.device)
    return values[..., mask].mean()


def pairwise_similarity_loss(real: Tensor, synthetic: Tensor) -> Tensor:
    """Pairwise-similarity preservation ``L_pair`` (reconstructed, §2.4).

    ``S_ij = cos(f_i, f_j)``, ``S~_ij = cos(f~_i, f~_j)``; the mean of ``(S~_ij - S_ij)^2`` over
    ``i != j``, averaged over the domains when ``synthetic`` is ``(B, K, d)``.
    """
    if real.shape[0] < 2:
        return real.new_zeros(())
    unit = F.normalize(real, dim=-1)
    sim = unit @ unit.T
    syn = F.normalize(synthetic, dim=-1)
    if syn.dim() == 2:
        syn = syn.unsqueeze(1)
    syn_sim = torch.einsum("ikd,jkd->kij", syn, syn)
    return _off_diagonal_mean((syn_sim - sim).pow(2))


def nn_self_loss(real: Tensor, synthetic: Tensor, logit_scale: float = math.exp(0.007)) -> Tensor:
    """LADS ``nn_self`` regulariser: each synthetic feature stays nearest its own source.

    ``logits_ij = logit_scale * cos(f~_i, f_j)`` over the batch originals, CE with target ``i``.
    """
    unit = F.normalize(real, dim=-1)
    syn = F.normalize(synthetic, dim=-1)
    if syn.dim() == 2:
        syn = syn.unsqueeze(1)
    logits = logit_scale * torch.einsum("ikd,jd->kij", syn, unit)
    targets = torch.arange(real.shape[0], device=real.device).repeat(syn.shape[1])
    return F.cross_entropy(logits.reshape(-1, real.shape[0]), targets)


def anchor_loss(real: Tensor, synthetic: Tensor) -> Tensor:
    """LADS e2e ``anchor`` regulariser: ``mean(1 - cos(f_i, f~_i))``."""
    syn = synthetic if synthetic.dim() == 3 else synthetic.unsqueeze(1)
    return (1.0 - F.cosine_similarity(real.unsqueeze(1), syn, dim=-1)).mean()


def diversity_loss(
    synthetic_a: Tensor, synthetic_b: Tensor, noise_a: Tensor, noise_b: Tensor, eps: float = 1e-8
) -> Tensor:
    """Mode-seeking diversity term ``-mean ||f~(z1) - f~(z2)|| / ||z1 - z2||`` (reconstructed)."""
    ratio = (synthetic_a - synthetic_b).norm(dim=-1) / ((noise_a - noise_b).norm(dim=-1) + eps)
    return -ratio.mean()
