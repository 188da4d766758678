"""The latent-diffusion training step: ε-MSE with caption dropout (SynFER stages 1 and 2).

    L = E ‖ε − ε_θ(x_t, c, t)‖²,  x_t = √ᾱ_t·z₀ + √(1−ᾱ_t)·ε,  t ~ U{0..T−1},

where z₀ is the scaled VAE latent of the image and c the caption embedding (plus the AU tokens
when ``synfer.au_adapter`` wraps the model). Each caption is replaced by ``""`` with
probability ``text_dropout`` (5 %, [repro]) so the model also learns the unconditional branch
that classifier-free guidance needs. ``train`` picks what is optimised: the UNet's LoRA layers
(stage 1, FEText fine-tuning), the AU adapter only (stage 2: the diffusion weights frozen), or
the whole UNet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, LossOutput, StepContext, Trainer
from torch import nn

from asklepios_synfer.au_adapter import AUAdapter, find_ldm
from asklepios_synfer.params import DiffusionTrainerParams

__all__ = ["DiffusionTrainer"]


def _au_adapters(model: nn.Module) -> list[AUAdapter]:
    return [m for m in model.modules() if isinstance(m, AUAdapter)]


class DiffusionTrainer(Trainer):
    """Run one latent-diffusion ε-MSE step with caption dropout (LoRA or AU-adapter training).

    ``optimizer_groups`` returns only the parameters ``train`` names and sets
    ``requires_grad=False`` on every other parameter of the model, so nothing else accumulates
    gradients (the VAE and text encoder are frozen by ``synfer.ldm`` already).
    """

    def __init__(self, params: DiffusionTrainerParams, ctx: BuildContext) -> None:
        self.params = params

    def optimizer_groups(self, model: nn.Module) -> Mapping[str, Sequence[Any]]:
        mode = self.params.train
        if mode == "adapter":
            adapters = _au_adapters(model)
            if not adapters:
                raise ComponentError(
                    "synfer.diffusion_train: train 'adapter' needs synfer.au_adapter in "
                    "model.adapters"
                )
            chosen = {
                id(p)
                for a in adapters
                for part in (a.image_proj, a.ip_adapter)
                for p in part.parameters()
            }
        else:
            unet = find_ldm(model).unet
            named = list(unet.named_parameters())
            chosen = {id(p) for n, p in named if mode == "unet" or "lora_" in n}
            if not chosen:
                raise ComponentError(
                    "synfer.diffusion_train: train 'lora' needs LoRA layers; set lora_rank on "
                    "synfer.ldm"
                )
        params = []
        for param in model.parameters():
            param.requires_grad_(id(param) in chosen)
            if id(param) in chosen:
                params.append(param)
        return {"main": params}

    def _drop(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Return the batch with captions (and AU vectors) dropped at their probabilities."""
        out = dict(batch)
        texts = [str(t) for t in batch["text"]]
        keep = torch.rand(len(texts)) >= self.params.text_dropout
        out["text"] = [t if k else "" for t, k in zip(texts, keep.tolist(), strict=True)]
        meta = batch.get("meta")
        if self.params.au_dropout > 0 and isinstance(meta, Mapping) and "au" in meta:
            au = meta["au"]
            keep_au = (torch.rand(au.shape[0]) >= self.params.au_dropout).to(au.device, au.dtype)
            out["meta"] = {**meta, "au": au * keep_au[:, None]}
        return out

    def train_step(self, step: StepContext, batch: dict[str, Any]) -> LossOutput:
        with step.autocast():
            outputs = step.model(self._drop(batch))
            loss = F.mse_loss(outputs["logits"].float(), outputs["eps_target"].float())
        step.backward(loss)
        step.step()
        return LossOutput(loss, {"eps_mse": loss.detach()})

    def example_batch(self, ctx: BuildContext, batch_size: int = 4) -> dict[str, Any]:
        """Return images, captions and AU vectors (the FEText sample contract)."""
        gen = torch.Generator().manual_seed(0)
        side = ctx.data.image_size[0] if ctx.data.image_size else 16
        return {
            "image": torch.rand(batch_size, 3, side, side, generator=gen),
            "text": [f"a face, example {i}" for i in range(batch_size)],
            "meta": {"au": (torch.rand(batch_size, 41, generator=gen) > 0.5).float()},
        }
