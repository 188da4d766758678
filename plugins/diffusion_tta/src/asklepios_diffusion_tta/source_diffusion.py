"""Source diffusion model: a diffusers ``UNet2DModel`` ε-predictor and its DDPM training step.

The class-unconditional model is trained on clean source images with the linear schedule
(β 1e-4 → 0.02, T = 1000) and the ε-MSE objective, plus λ·L_vlb (λ = 0.001, Improved DDPM's hybrid
loss) when the variance is learned. That the skin paper trains its own source model is known only
from a third-party summary; its architecture and budget are unknown (reconstructed).

References:
    Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020. Nichol & Dhariwal,
    "Improved DDPM", ICML 2021 (hybrid loss). Hu et al., arXiv 2405.11289.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import (
    Backbone,
    BuildContext,
    ComponentError,
    EmptyParams,
    Evaluator,
    LossOutput,
    Trainer,
)
from asklepios_sdk import Loss as LossBase
from asklepios_sdk.io import write_dir_atomic
from torch import Tensor

from asklepios_diffusion_tta._diffusion import DiffusionSchedule, linear_betas
from asklepios_diffusion_tta.params import DiffusionTrainerParams, EpsMSEParams, SourceUNetParams

__all__ = [
    "DenoisingError",
    "DiffusionTrainer",
    "DiffusionTrainerParams",
    "EpsMSE",
    "EpsMSEParams",
    "SourceUNet",
    "SourceUNetParams",
    "diffusion_loss",
    "discretized_gaussian_log_likelihood",
    "normal_kl",
]


class SourceUNet(Backbone):
    """Predict ε with the source diffusion model, a diffusers UNet2DModel (random init).

    The ``UNet2DModel`` serves as ε_θ(x_t, t); its side is ``sample_size`` or the dataset's image
    size. ``forward`` maps ``batch["image"]`` to [−1, 1], draws t and ε (or takes ``timesteps``
    and ``noise`` from the batch), and returns ``logits`` (the model output: ε, or [ε, v]),
    ``eps_target``, ``x_start``, ``x_t``, ``timesteps`` and ``features`` (the per-channel mean of
    the ε prediction, of width ``feature_dim``).
    """

    def __init__(self, params: SourceUNetParams, ctx: BuildContext) -> None:
        size = params.sample_size or (ctx.data.image_size[0] if ctx.data.image_size else None)
        if size is None:
            raise ComponentError(
                "diffusion_tta.source_unet: set sample_size (the dataset does not state image_size)"
            )
        sample_size = int(size)
        in_channels = ctx.data.in_channels or 3
        super().__init__()
        # The leaf modules, not ``diffusers``: its TYPE_CHECKING imports resolve to dummy objects.
        from diffusers.models import UNet2DModel

        self.params = params
        levels = len(params.block_out_channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if params.attention:
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.in_channels = in_channels
        out_channels = in_channels * (2 if params.learn_sigma else 1)
        self.unet = UNet2DModel(
            sample_size=sample_size,
            in_channels=in_channels,
            out_channels=out_channels,
            block_out_channels=tuple(params.block_out_channels),
            layers_per_block=params.layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=params.norm_num_groups,
        )
        self.feature_dim = out_channels
        betas = linear_betas(params.num_train_timesteps, params.beta_start, params.beta_end)
        self.schedule = DiffusionSchedule(betas, np.arange(len(betas)))

    def eps(self, x_t: Tensor, t: Tensor) -> Tensor:
        """Return the UNet output at (x_t, t): ε, or [ε, v] with a learned variance."""
        return self.unet(x_t, t).sample

    def to_model_space(self, images: Tensor) -> Tensor:
        """Map classifier-space images to the diffusion model's [−1, 1]."""
        mean = torch.as_tensor(self.params.pixel_mean, dtype=images.dtype, device=images.device)
        std = torch.as_tensor(self.params.pixel_std, dtype=images.dtype, device=images.device)
        pixels = images * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
        return (pixels * 2 - 1).clamp(-1, 1)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        x0 = self.to_model_space(batch["image"].float())
        n = x0.shape[0]
        t = batch.get("timesteps")
        if t is None:
            t = torch.randint(0, self.schedule.num_steps, (n,), device=x0.device)
        noise = batch.get("noise")
        if noise is None:
            noise = torch.randn_like(x0)
        ac = torch.as_tensor(self.schedule.alphas_cumprod, dtype=x0.dtype, device=x0.device)[t]
        ac = ac.view(-1, 1, 1, 1)
        x_t = ac.sqrt() * x0 + (1 - ac).sqrt() * noise
        out = self.eps(x_t, t)
        features = out[:, : self.feature_dim].mean(dim=(2, 3))
        return {
            "logits": out,
            "features": features,
            "eps_target": noise,
            "x_start": x0,
            "x_t": x_t,
            "timesteps": t,
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``unet/`` and ``scheduler/`` (a diffusers folder) atomically to ``directory``."""
        from diffusers.schedulers.scheduling_ddpm import DDPMScheduler

        def write(folder: Path) -> None:
            self.unet.save_pretrained(folder / "unet")
            DDPMScheduler(
                num_train_timesteps=self.params.num_train_timesteps,
                beta_start=self.params.beta_start,
                beta_end=self.params.beta_end,
                beta_schedule="linear",
                variance_type="learned_range" if self.params.learn_sigma else "fixed_small",
            ).save_pretrained(folder / "scheduler")

        return write_dir_atomic(directory, write=write)


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Return KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """Return log p(x) of 8-bit data in [−1, 1] under a Gaussian discretised into 256 bins."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = torch.special.ndtr(inv_std * (centered + 1.0 / 255.0))
    cdf_min = torch.special.ndtr(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


def diffusion_loss(
    outputs: dict[str, Tensor], schedule: DiffusionSchedule, vlb_weight: float = 0.001
) -> LossOutput:
    """Return ε-MSE (+ ``vlb_weight``·T·L_t with a learned variance, Improved DDPM hybrid).

    The L_vlb term sees the predicted mean with ε detached, so it trains only the variance.
    """
    out, noise, x0, x_t, t = (
        outputs["logits"],
        outputs["eps_target"],
        outputs["x_start"],
        outputs["x_t"],
        outputs["timesteps"],
    )
    c = noise.shape[1]
    eps = out[:, :c]
    mse = ((eps - noise) ** 2).mean()
    terms = {"mse": mse}
    total = mse
    if out.shape[1] == 2 * c:
        v = out[:, c:]

        def at(values: np.ndarray) -> Tensor:
            table = torch.as_tensor(values, dtype=x_t.dtype, device=x_t.device)
            return table[t].view(-1, 1, 1, 1)

        ac, prev, beta = (
            schedule.alphas_cumprod,
            schedule.alphas_cumprod_prev,
            schedule.betas,
        )
        x0_hat = (at(np.sqrt(1 / ac)) * x_t - at(np.sqrt(1 / ac - 1)) * eps.detach()).clamp(-1, 1)
        coef1 = at(beta * np.sqrt(prev) / (1 - ac))
        coef2 = at((1 - prev) * np.sqrt(1 - beta) / (1 - ac))
        min_log = at(schedule.posterior_log_variance_clipped)
        frac = (v + 1) / 2
        log_var = frac * at(np.log(beta)) + (1 - frac) * min_log
        mean = coef1 * x0_hat + coef2 * x_t
        true_mean = coef1 * x0 + coef2 * x_t
        kl = normal_kl(true_mean, min_log, mean, log_var).flatten(1).mean(1)
        nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).flatten(1).mean(1)
        per_sample = torch.where(t == 0, nll, kl) / math.log(2.0)
        vlb = per_sample.mean() * schedule.num_steps * vlb_weight
        terms["vlb"] = vlb
        total = total + vlb
    return LossOutput(total=total, terms=terms)


class DiffusionTrainer(Trainer):
    """Train the source diffusion model (DDPM ε-MSE, + λ·L_vlb with learned variance).

    One step on clean source images: the model must be ``diffusion_tta.source_unet``.
    """

    def __init__(self, params: DiffusionTrainerParams, ctx: BuildContext) -> None:
        self.params = params

    def train_step(self, step: Any, batch: dict[str, Any]) -> LossOutput:
        model = step.model
        inner = getattr(model, "module", model)
        if not isinstance(inner, SourceUNet):
            raise ComponentError(
                "diffusion_tta.train_source_diffusion trains diffusion_tta.source_unet; set "
                "model.backbone.type: diffusion_tta.source_unet in this stage"
            )
        with step.autocast():
            outputs = model(batch)
            loss = diffusion_loss(outputs, inner.schedule, self.params.vlb_weight)
        step.backward(loss.total)
        step.step()
        return loss


class EpsMSE(LossBase):
    """Score ε predictions of diffusion_tta.source_unet (ε-MSE, + λ·L_vlb when learned).

    The same objective as ``diffusion_tta.train_source_diffusion``, as a loss, so the engine can
    report the validation/test loss of the diffusion stage.
    """

    def __init__(self, params: EpsMSEParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        betas = linear_betas(params.num_train_timesteps, params.beta_start, params.beta_end)
        self.schedule = DiffusionSchedule(betas, np.arange(len(betas)))

    def forward(self, outputs: Any, batch: Any) -> LossOutput:
        missing = {"logits", "eps_target", "x_start", "x_t", "timesteps"} - set(outputs)
        if missing:
            raise ComponentError(
                f"diffusion_tta.eps_mse needs the outputs of diffusion_tta.source_unet; missing "
                f"{sorted(missing)}"
            )
        return diffusion_loss(dict(outputs), self.schedule, self.params.vlb_weight)

    def example_inputs(self, ctx: BuildContext, batch_size: int = 4) -> tuple[dict, dict]:
        """Return the outputs of a 1-level UNet-like ε-net (requires grad) and the batch."""
        gen = torch.Generator().manual_seed(1)
        x0 = torch.rand(batch_size, 3, 8, 8, generator=gen) * 2 - 1
        noise = torch.randn(batch_size, 3, 8, 8, generator=gen)
        t = torch.tensor([0, 5, 500, 999][:batch_size])
        ac = torch.as_tensor(self.schedule.alphas_cumprod, dtype=x0.dtype)[t].view(-1, 1, 1, 1)
        x_t = ac.sqrt() * x0 + (1 - ac).sqrt() * noise
        out = torch.randn(batch_size, 6, 8, 8, generator=gen).requires_grad_(True)
        outputs = {"logits": out, "eps_target": noise, "x_start": x0, "x_t": x_t, "timesteps": t}
        return outputs, {"image": (x0 + 1) / 2}


class DenoisingError(Evaluator):
    """Report the ε-MSE of the source diffusion model on the evaluated split.

    The mean over pixels and samples; the monitor of the diffusion stage.
    """

    name = "denoising"
    higher_is_better = False
    squared: Tensor
    count: Tensor

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__()
        self.add_state("squared", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, outputs: Any, batch: Any) -> None:
        if "eps_target" not in outputs:
            raise ComponentError(
                "diffusion_tta.denoising scores diffusion_tta.source_unet outputs (eps_target "
                "missing); use it only in the stage that trains the source diffusion model"
            )
        noise = outputs["eps_target"]
        eps = outputs["logits"][:, : noise.shape[1]]
        self.squared += ((eps.double() - noise.double()) ** 2).sum()
        self.count += noise.numel()

    def compute(self) -> dict[str, float]:
        return {"eps_mse": float(self.squared / self.count.clamp_min(1))}

    def example_inputs(self, ctx: BuildContext, batch_size: int = 8) -> tuple[dict, dict]:
        """Return ε predictions and targets like diffusion_tta.source_unet's."""
        gen = torch.Generator().manual_seed(2)
        noise = torch.randn(batch_size, 3, 8, 8, generator=gen)
        outputs = {"logits": torch.randn(batch_size, 3, 8, 8, generator=gen), "eps_target": noise}
        return outputs, {"image": torch.rand(batch_size, 3, 8, 8, generator=gen)}
