"""Spec §5.2: x̂₀ and the DDIM round trip; the step against the paper's formula in numpy."""

from __future__ import annotations

import numpy as np
import torch
from asklepios_synfer._ddim import (
    ddim_denoise,
    ddim_invert,
    ddim_step,
    guidance_update,
    level_alphas,
    x0_from_eps,
)
from asklepios_synfer.ldm import SD15_SCHEDULER
from diffusers import DDIMScheduler


def _window(steps: int = 50, invert: int = 35) -> tuple[list[int], list[float]]:
    scheduler = DDIMScheduler(**SD15_SCHEDULER)
    scheduler.set_timesteps(steps)
    window = sorted(int(t) for t in scheduler.timesteps)[:invert]
    final = float(scheduler.alphas_cumprod[0])  # set_alpha_to_one=False in SD 1.5
    return window, level_alphas(scheduler.alphas_cumprod, window, final)


def test_x0_of_a_toy_eps_model_matches_a_hand_computation() -> None:
    x_t = torch.tensor([[1.0, -2.0, 0.5]])
    alpha = 0.64  # √α = 0.8, √(1−α) = 0.6
    eps = 0.1 * x_t
    expected = torch.tensor([[(1.0 - 0.06) / 0.8, (-2.0 + 0.12) / 0.8, (0.5 - 0.03) / 0.8]])
    assert torch.allclose(x0_from_eps(x_t, eps, alpha), expected, atol=1e-7)


def test_the_step_is_the_papers_deterministic_update() -> None:
    rng = np.random.default_rng(0)
    x, eps = rng.normal(size=(2, 4, 3, 3)), rng.normal(size=(2, 4, 3, 3))
    a_t, a_prev = 0.3, 0.55
    paper = (
        np.sqrt(a_prev / a_t) * x
        + np.sqrt(a_prev) * (np.sqrt(1 / a_prev - 1) - np.sqrt(1 / a_t - 1)) * eps
    )
    ours = ddim_step(torch.from_numpy(x), torch.from_numpy(eps), a_t, a_prev).numpy()
    assert np.allclose(ours, paper, atol=1e-12)


def test_inversion_then_denoising_with_a_constant_eps_returns_the_start() -> None:
    window, alphas = _window()
    assert len(window) == 35 and window == sorted(window)
    start = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    constant = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    seen: list[tuple[str, int]] = []

    def eps(direction: str):  # independent of x and t; records the order of timesteps
        def fn(x: torch.Tensor, t: int) -> torch.Tensor:
            seen.append((direction, t))
            return constant

        return fn

    top = ddim_invert(start, eps("up"), window, alphas)
    back = ddim_denoise(top, eps("down"), window, alphas)
    assert torch.allclose(back, start, atol=1e-4)
    assert [t for d, t in seen if d == "up"] == window
    assert [t for d, t in seen if d == "down"] == window[::-1]
    assert not torch.allclose(top, start, atol=1e-2)  # it did move


def test_a_guidance_step_moves_every_token_by_lambda() -> None:
    c = torch.randn(2, 5, 8)
    grad = torch.randn(2, 5, 8)
    grad[0, 3] = 0  # a token without gradient stays
    new = guidance_update(c, grad, 0.1, -1)
    moved = (new - c).norm(dim=-1)
    assert torch.allclose(moved[grad.norm(dim=-1) > 0], torch.tensor(0.1), atol=1e-6)
    assert torch.equal(new[0, 3], c[0, 3])
    whole = guidance_update(c, grad, 0.1, 1, "global_l2")
    assert torch.allclose((whole - c).flatten(1).norm(dim=1), torch.tensor(0.1), atol=1e-6)
