"""Diffusion-driven test-time input adaptation (DDA) with low-pass structure guidance.

Each test image x_ref is noised forward to respaced step N, then denoised back with a frozen source
diffusion model ε_θ; after every ancestral step the sample is moved against the gradient of
d = ‖φ_D(x_ref) − φ_D(x̂_0(x_t))‖ (the gradient goes through ε_θ). The classifier then sees the
adapted image. No weights change at test time.

References:
    Gao et al., "Back to the Source: Diffusion-Driven Adaptation to Test-Time Corruption", CVPR 2023
    (released code: shiyegao/DDA). Hu et al., arXiv 2405.11289 (skin lesions; reconstructed from
    DDA). Choi et al., "ILVR", ICCV 2021 (``guidance: ilvr``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, BuildContext, ComponentError, WeightsError
from torch import Tensor, nn

from asklepios_diffusion_tta._diffusion import (
    DiffusionSchedule,
    LowpassFilter,
    VarianceType,
    linear_betas,
    lowpass,
)
from asklepios_diffusion_tta._imagenet_c import jpeg_encode
from asklepios_diffusion_tta.params import DDPMAdapterParams

__all__ = [
    "DDPMAdapter",
    "DDPMAdapterParams",
    "guidance_distance",
    "guidance_gradient",
    "guided_reverse_sampling",
    "load_diffusion_model",
]

EpsFn = Callable[[Tensor, Tensor], Tensor]


def guidance_distance(
    ref_lowpass: Tensor,
    x0_hat: Tensor,
    factor: int,
    reduction: str,
    lowpass_filter: LowpassFilter = "bicubic",
) -> Tensor:
    """Return d = ‖φ_D(x_ref) − φ_D(x̂_0)‖: summed per-sample norms, or one norm of the batch."""
    residual = ref_lowpass - lowpass(x0_hat, factor, lowpass_filter)
    if reduction == "batch":
        return torch.linalg.norm(residual)
    return residual.flatten(1).norm(dim=1).sum()


def _eps_and_variance(eps_fn: EpsFn, x_t: Tensor, t_model: Tensor) -> tuple[Tensor, Tensor | None]:
    out = eps_fn(x_t, t_model)
    channels = x_t.shape[1]
    if out.shape[1] == 2 * channels:
        return out[:, :channels], out[:, channels:]
    if out.shape[1] != channels:
        raise ComponentError(
            f"the diffusion model returned {out.shape[1]} channels for a {channels}-channel input; "
            "expected ε (same channels) or [ε, v] (twice)"
        )
    return out, None


def _predict(
    eps_fn: EpsFn, schedule: DiffusionSchedule, x_t: Tensor, t: int, clip: bool
) -> tuple[Tensor, Tensor | None]:
    t_model = torch.full((x_t.shape[0],), int(schedule.timestep_map[t]), device=x_t.device)
    eps, v = _eps_and_variance(eps_fn, x_t, t_model)
    x0 = schedule.predict_x0(x_t, t, eps)
    return (x0.clamp(-1, 1) if clip else x0), v


def guidance_gradient(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x_t: Tensor,
    t: int,
    ref_lowpass: Tensor,
    factor: int,
    reduction: str = "sample",
    clip: bool = True,
    lowpass_filter: LowpassFilter = "bicubic",
) -> tuple[Tensor, Tensor]:
    """Return ``(d(x_t), ∇_{x_t} d)`` at respaced step ``t`` (gradient through ε_θ)."""
    with torch.inference_mode(False), torch.enable_grad():
        x = x_t.detach().clone().requires_grad_(True)
        x0, _ = _predict(eps_fn, schedule, x, t, clip)
        d = guidance_distance(ref_lowpass, x0, factor, reduction, lowpass_filter)
        (grad,) = torch.autograd.grad(d, x)
    return d.detach(), grad


def guided_reverse_sampling(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x_ref: Tensor,
    *,
    start_step: int = 50,
    start_index_offset: int = 0,
    guidance: str = "dda",
    factor: int = 4,
    scale: float = 6.0,
    reduction: str = "sample",
    ilvr_stop: int = 0,
    clip: bool = True,
    variance: VarianceType = "fixed_small",
    generator: torch.Generator | None = None,
    lowpass_filter: LowpassFilter = "bicubic",
) -> Tensor:
    """Noise ``x_ref`` (in [−1, 1]) to ``start_step`` and denoise it with structure guidance.

    Returns x̂ = x_0 of the reverse chain, same shape as ``x_ref``. With ``scale = 0`` (or
    ``guidance = "none"``) the chain is the plain ancestral sampler, draw for draw.
    """
    if not 1 <= start_step < schedule.num_steps:
        raise ComponentError(
            f"start_step {start_step} is outside 1..{schedule.num_steps - 1} of the "
            "respaced schedule"
        )

    def randn() -> Tensor:
        return torch.randn(x_ref.shape, generator=generator, device=x_ref.device, dtype=x_ref.dtype)

    ref_lowpass = lowpass(x_ref, factor, lowpass_filter)
    x = schedule.q_sample(x_ref, start_step, randn()).detach()
    use_grad = guidance == "dda" and scale != 0
    for t in range(start_step - start_index_offset, -1, -1):
        with torch.inference_mode(False), torch.enable_grad():
            x = x.detach().clone().requires_grad_(use_grad)
            x0, v = _predict(eps_fn, schedule, x, t, clip)
            mean = schedule.posterior_mean(x0, x, t)
            log_var = schedule.model_log_variance(t, variance, v, x)
            noise = randn()
            sample = mean + (torch.exp(0.5 * log_var) * noise if t > 0 else 0.0)
            if use_grad:
                d = guidance_distance(ref_lowpass, x0, factor, reduction, lowpass_filter)
                (grad,) = torch.autograd.grad(d, x)
                sample = sample - scale * grad
        sample = sample.detach()
        if guidance == "ilvr" and t > ilvr_stop:
            y = schedule.q_sample(x_ref, t - 1, randn())
            sample = (
                sample
                - lowpass(sample, factor, lowpass_filter)
                + lowpass(y, factor, lowpass_filter)
            )
        x = sample
    return x.detach()


def _resolve_dir(model_dir: str, output_dir: str | None) -> Path:
    path = Path(model_dir).expanduser()
    tried = []
    if not path.is_absolute() and output_dir:
        candidate = Path(output_dir) / path
        tried.append(candidate)
        if candidate.is_dir():
            return candidate
    tried.append(path)
    if path.is_dir():
        return path
    raise WeightsError(
        "diffusion_tta.ddpm_adapter: no diffusion model directory; tried "
        f"{[str(p) for p in tried]}. Train one with diffusion_tta.train_source_diffusion (it "
        "saves 'source_diffusion' in the run directory) or set model_dir to a local diffusers "
        "folder (UNet2DModel.save_pretrained)."
    )


def load_diffusion_model(
    model_dir: str | Path, output_dir: str | None = None
) -> tuple[nn.Module, np.ndarray, str]:
    """Load a diffusers ``UNet2DModel`` and its DDPM schedule from a local directory only.

    Returns:
        ``(unet, betas, variance_type)``; betas in float64 (recomputed exactly for the linear
        schedule), variance type from the scheduler config (``fixed_small`` without one).

    Raises:
        WeightsError: nothing loadable there (the message lists the paths tried).
        ComponentError: the scheduler predicts something other than ε.
    """
    from diffusers.models import UNet2DModel
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

    root = _resolve_dir(str(model_dir), output_dir)
    unet_kwargs: dict[str, Any] = {"local_files_only": True, "low_cpu_mem_usage": False}
    if (root / "unet").is_dir():
        unet_kwargs["subfolder"] = "unet"
    try:
        unet = UNet2DModel.from_pretrained(root, **unet_kwargs)
    except (OSError, ValueError) as err:
        raise WeightsError(f"cannot load a UNet2DModel from {root}: {err}") from err
    if (root / "scheduler" / "scheduler_config.json").is_file():
        scheduler = DDPMScheduler.from_pretrained(
            root, subfolder="scheduler", local_files_only=True
        )
    elif (root / "scheduler_config.json").is_file():
        scheduler = DDPMScheduler.from_pretrained(root, local_files_only=True)
    else:
        scheduler = DDPMScheduler()
    config = scheduler.config
    if config.prediction_type != "epsilon":
        raise ComponentError(
            f"the scheduler in {root} predicts {config.prediction_type!r}; DDA needs an ε-predictor"
        )
    if config.beta_schedule == "linear" and config.trained_betas is None:
        betas = linear_betas(config.num_train_timesteps, config.beta_start, config.beta_end)
    else:
        betas = scheduler.betas.double().numpy()
    variance = (
        config.variance_type
        if config.variance_type in ("fixed_small", "fixed_large")
        else "fixed_small"
    )
    return unet, betas, variance


class _UNetEps(nn.Module):
    """Call a diffusers UNet as ε_θ(x_t, t)."""

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.unet(x, t)
        return out.sample if hasattr(out, "sample") else out


class DDPMAdapter(Adapter):
    """Adapt test images by guided DDPM projection onto the source domain (DDA).

    The frozen source diffusion model is loaded from the local folder ``params.model_dir``
    (looked up in the run directory first); each test image is adapted before the classifier
    sees it.
    """

    def __init__(self, params: DDPMAdapterParams, ctx: BuildContext) -> None:
        super().__init__()
        unet, betas, scheduler_variance = load_diffusion_model(params.model_dir, ctx.output_dir)
        self.params = params
        self.eps_model = _UNetEps(unet).eval().requires_grad_(False)
        self.schedule = DiffusionSchedule.respaced(betas, params.timestep_respacing)
        if params.start_step >= self.schedule.num_steps:
            raise ComponentError(
                f"diffusion_tta.ddpm_adapter: start_step {params.start_step} must be below the "
                f"{self.schedule.num_steps} respaced steps of "
                f"timestep_respacing={params.timestep_respacing!r}"
            )
        self._scheduler_variance = scheduler_variance
        self._calls = 0

    def _variance(self, learned: bool) -> VarianceType:
        if self.params.variance != "auto":
            return self.params.variance
        return "learned_range" if learned else self._scheduler_variance  # type: ignore[return-value]

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        c = x.shape[1]
        mean = torch.as_tensor(self.params.pixel_mean, dtype=x.dtype, device=x.device)
        std = torch.as_tensor(self.params.pixel_std, dtype=x.dtype, device=x.device)
        if mean.numel() not in (1, c) or std.numel() not in (1, c):
            raise ComponentError(
                f"diffusion_tta.ddpm_adapter: pixel_mean/pixel_std need 1 or {c} values"
            )
        return mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    def adapt(self, images: Tensor) -> Tensor:
        """Return the adapted version of classifier-space ``images`` (same space and shape)."""
        p = self.params
        mean, std = self._stats(images)
        x = (images.float() * std + mean) * 2 - 1
        size = x.shape[-2:]
        if p.diffusion_size is not None and tuple(size) != (p.diffusion_size, p.diffusion_size):
            x = F.interpolate(x, size=(p.diffusion_size,) * 2, mode="bilinear", antialias=True)
        learned = self._learns_variance(x)
        gen = torch.Generator(device=x.device).manual_seed(p.seed + self._calls)
        self._calls += 1
        out = guided_reverse_sampling(
            self.eps_model,
            self.schedule,
            x.clamp(-1, 1),
            start_step=p.start_step,
            start_index_offset=p.start_index_offset,
            guidance=p.guidance,
            factor=p.downsample_factor,
            scale=p.guidance_scale,
            reduction=p.norm_reduction,
            ilvr_stop=p.ilvr_stop,
            clip=p.clip_denoised,
            variance=self._variance(learned),
            generator=gen,
            lowpass_filter=p.lowpass_filter,
        )
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=tuple(size), mode="bilinear", antialias=True)
        pixels = ((out + 1) / 2).clamp(0, 1)
        if p.reencode_jpeg_quality is not None:
            pixels = jpeg_encode(pixels, p.reencode_jpeg_quality)
        return ((pixels - mean) / std).to(images.dtype)

    def _learns_variance(self, x: Tensor) -> bool:
        config = getattr(getattr(self.eps_model, "unet", None), "config", None)
        if config is not None and hasattr(config, "out_channels"):
            return int(config.out_channels) == 2 * x.shape[1]
        return False

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        if self.training and not self.params.adapt_in_training:
            return self.model(batch)
        adapted = self.adapt(batch["image"])
        outputs = dict(self.model({**batch, "image": adapted}))
        return outputs

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return a tiny batch of images in the classifier space of the params."""
        mean = torch.as_tensor(self.params.pixel_mean).view(1, -1, 1, 1)
        std = torch.as_tensor(self.params.pixel_std).view(1, -1, 1, 1)
        gen = torch.Generator().manual_seed(0)
        side = self.params.diffusion_size or 16
        pixels = torch.rand(batch_size, 3, side, side, generator=gen)
        batch: dict[str, Any] = {"image": (pixels - mean) / std}
        batch["label"] = torch.randint(0, ctx.data.num_classes or 2, (batch_size,), generator=gen)
        return batch


def unet_evaluations(params: DDPMAdapterParams) -> tuple[int, int]:
    """Return (forward, backward) UNet passes per adapted image for ``params``."""
    steps = params.start_step - params.start_index_offset + 1
    backward = steps if params.guidance == "dda" and params.guidance_scale != 0 else 0
    return steps, backward
