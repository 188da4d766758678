"""DDIM arithmetic in the paper's notation (ᾱ_t written α_t): x̂₀, steps, inversion, guidance.

Pure tensor functions, tested against hand computations and a numpy transcription:

- ``x̂₀ = (x_t − √(1−α_t)·ε) / √α_t``;
- deterministic step between levels ``a → b`` with the same ε:
  ``x_b = √α_b·x̂₀ + √(1−α_b)·ε``, which for ``b < a`` (less noise) is the paper's
  ``x_{t−1} = √(α_{t−1}/α_t)·x_t + √α_{t−1}·(√(1/α_{t−1}−1) − √(1/α_t−1))·ε`` and for ``b > a``
  the DDIM inversion step;
- the normalised guidance step ``c ← c + sign·λ·g/‖g‖`` (per token along channels by default).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "EpsFn",
    "ddim_denoise",
    "ddim_invert",
    "ddim_step",
    "guidance_update",
    "level_alphas",
    "x0_from_eps",
]

EpsFn = Callable[[Tensor, int], Tensor]
"""ε_θ(x, t) at the schedule's timestep ``t`` (an int)."""


def x0_from_eps(x_t: Tensor, eps: Tensor, alpha_t: float | Tensor) -> Tensor:
    """Return x̂₀ = (x_t − √(1−α_t)·ε) / √α_t."""
    alpha = torch.as_tensor(alpha_t, dtype=x_t.dtype, device=x_t.device)
    return (x_t - (1 - alpha).sqrt() * eps) / alpha.sqrt()


def ddim_step(x: Tensor, eps: Tensor, alpha_from: float, alpha_to: float) -> Tensor:
    """Move ``x`` from level ``alpha_from`` to ``alpha_to`` with a deterministic DDIM step."""
    x0 = x0_from_eps(x, eps, alpha_from)
    to = torch.as_tensor(alpha_to, dtype=x.dtype, device=x.device)
    return to.sqrt() * x0 + (1 - to).sqrt() * eps


def level_alphas(
    alphas_cumprod: Tensor, timesteps: Sequence[int], final_alpha: float
) -> list[float]:
    """Return α of each level: level 0 is clean (``final_alpha``), level k is ``timesteps[k-1]``.

    ``timesteps`` is ascending: the window of the schedule that inversion climbs and denoising
    descends.
    """
    return [float(final_alpha)] + [float(alphas_cumprod[t]) for t in timesteps]


def ddim_invert(
    x0: Tensor, eps_fn: EpsFn, timesteps: Sequence[int], alphas: Sequence[float]
) -> Tensor:
    """Climb from the clean level 0 to level ``len(timesteps)`` (DDIM inversion).

    Step ``k`` (level ``k → k+1``) uses ε evaluated at the current latent and the *target*
    timestep ``timesteps[k]``, the one :func:`ddim_denoise` uses to come back down.
    """
    x = x0
    for k, t in enumerate(timesteps):
        x = ddim_step(x, eps_fn(x, int(t)), alphas[k], alphas[k + 1])
    return x


def ddim_denoise(
    x_top: Tensor,
    eps_fn: EpsFn,
    timesteps: Sequence[int],
    alphas: Sequence[float],
    on_step: Callable[[int, int, Tensor], Tensor] | None = None,
) -> Tensor:
    """Descend from level ``len(timesteps)`` to the clean level 0.

    ``on_step(i, t, x)`` (optional) runs before the ``i``-th step (``i = 0`` at the top) and may
    replace ``x``; guided generation uses it to update the text embedding first.
    """
    x = x_top
    levels = len(timesteps)
    for i in range(levels):
        k = levels - 1 - i  # level k+1 -> k
        t = int(timesteps[k])
        if on_step is not None:
            x = on_step(i, t, x)
        x = ddim_step(x, eps_fn(x, t), alphas[k + 1], alphas[k])
    return x


def guidance_update(
    c: Tensor,
    grad: Tensor,
    lambda_g: float,
    sign: int,
    norm: str = "per_token_l2",
    eps: float = 1e-8,
) -> Tensor:
    """Return ``c + sign·λ·ĝ`` with ĝ the gradient normalised as ``norm`` says.

    ``per_token_l2`` divides each token's gradient (last dimension) by its L2 norm (+ ``eps``),
    so every token with a non-zero gradient moves by λ exactly; ``global_l2`` divides each
    sample's whole gradient by its norm; ``none`` takes the raw gradient.
    """
    if norm == "per_token_l2":
        direction = grad / (grad.norm(dim=-1, keepdim=True) + eps)
    elif norm == "global_l2":
        flat = grad.flatten(1).norm(dim=1).view(-1, *([1] * (grad.dim() - 1)))
        direction = grad / (flat + eps)
    else:
        direction = grad
    return c + sign * lambda_g * direction
