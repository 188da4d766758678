"""Fundus2Video's adversarial trainer: per-window-step G / F / D updates (§4.2, §5, §7).

For every window step ``n`` of a video the generator predicts 3 frames from ``[x ; C_n]``; the
generator objective

``L_G = 2·G_GAN + G_GAN_Feat + G_VGG + 5·G_seg + G_NCE + G_GAN_temp``

is back-propagated and stepped at once (truncated back-propagation of length 1: the next step's
context is detached), then the PatchNCE projection heads (F) step, then the discriminator, whose
gradients left by ``L_G`` are zeroed before ``L_D = ½(D_fake + D_real) + ½(D_fake_temp +
D_real_temp)`` is back-propagated. Scheduled sampling moves the context from real to generated
frames over the first 1000 training videos.

References:
    Zhang et al., "Fundus2Video", MICCAI 2024, arXiv 2408.15217 (code ``Michi-3000/Fundus2Video``,
    ``train.py``, ``models/pix2pixHD_model_tempo.py``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from asklepios_sdk import BuildContext, ComponentError, LossOutput, StepContext, Trainer
from torch import Tensor, nn

from asklepios_knowledge_mask.attention import KnowledgeAttention
from asklepios_knowledge_mask.discriminator import MultiscaleDiscriminator, feature_matching, lsgan
from asklepios_knowledge_mask.generator import (
    FundusVideoGenerator,
    context_window,
    find_generator,
    sampling_probability,
    step_target,
)
from asklepios_knowledge_mask.params import AdversarialTrainerParams
from asklepios_knowledge_mask.patchnce import MaskedPatchNCE
from asklepios_knowledge_mask.perceptual import VGGPerceptual, gradient_variance

__all__ = ["AUX_NAME", "AdversarialTrainer"]

AUX_NAME = "knowledge_mask_adversarial"
"""Name under which the trainer attaches D, the projection heads and its counter to the model."""


class _Aux(nn.Module):
    """What the trainer adds to the model: D, the PatchNCE heads and the videos-seen counter."""

    videos_seen: Tensor  # a buffer: declared so that it is not typed Tensor | Module

    def __init__(self, discriminator: nn.Module, nce: MaskedPatchNCE | None) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.nce = nce
        self.register_buffer("videos_seen", torch.zeros((), dtype=torch.long))

    def forward(self, *args: Any) -> None:  # pragma: no cover - never called
        raise ComponentError("the knowledge_mask adversarial state is not a model to call")


class AdversarialTrainer(Trainer):
    """Train the sliding-window generator adversarially, one window step at a time.

    Optimiser groups: ``main`` (generator and adapters), ``discriminator`` and, unless
    ``mode: faithful``, ``projection`` (the PatchNCE heads); configure the last two under
    ``optimizers`` (Adam, lr 2e-4, betas (0.5, 0.999) in the original). The batch holds
    ``image`` (CF, ``(B, 3, H, W)``), ``video`` (``(B, M, 3, H, W)``) and ``knowledge_mask``.
    """

    def __init__(self, params: AdversarialTrainerParams, ctx: BuildContext) -> None:
        world_size = ctx.world_size
        if world_size > 1:
            raise ComponentError(
                "knowledge_mask.adversarial runs in one process only: its discriminator and "
                "projection heads are stepped outside the DistributedDataParallel forward, so "
                f"their gradients would not be synchronised across {world_size} ranks; run "
                "without torchrun"
            )
        self.params = params
        self.ctx = ctx
        self.aux: _Aux | None = None
        self.vgg: VGGPerceptual | None = None
        if params.vgg is not None:
            self.vgg = VGGPerceptual(params.vgg, ctx)

    def build_aux(self, model: nn.Module) -> _Aux:
        """Create D and the projection heads for ``model`` and attach them to it (once)."""
        existing = getattr(model, AUX_NAME, None)
        if isinstance(existing, _Aux):
            self.aux = existing
            return existing
        p = self.params
        generator = find_generator(model)
        if p.mode == "faithful" and any(isinstance(m, KnowledgeAttention) for m in model.modules()):
            raise ComponentError(
                "knowledge_mask.adversarial: mode 'faithful' reproduces the released code, which "
                "has no knowledge-boosted attention; remove knowledge_mask.attention from "
                "model.adapters or use mode 'fixed'"
            )
        d = p.discriminator
        discriminator = MultiscaleDiscriminator(d.input_nc, d.ndf, d.n_layers, d.num_D)
        nce = None
        if p.nce is not None:
            channels = tuple(generator.netG.layer_channels(p.nce.nce_layers))
            nce_params = p.nce.model_copy(update={"channels": channels, "mode": p.mode})
            nce = MaskedPatchNCE(nce_params, self.ctx)
        device = next(generator.parameters()).device
        self.aux = _Aux(discriminator, nce).to(device)
        model.add_module(AUX_NAME, self.aux)
        return self.aux

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Return ``main`` (G + adapters), ``discriminator`` and ``projection`` parameters."""
        aux = self.build_aux(model)
        own = {id(q) for q in aux.parameters()}
        groups = {
            "main": [q for q in model.parameters() if q.requires_grad and id(q) not in own],
            "discriminator": list(aux.discriminator.parameters()),
        }
        if aux.nce is not None and aux.nce.head_parameters():
            groups["projection"] = aux.nce.head_parameters()
        return groups

    def _generator_terms(
        self,
        generator: FundusVideoGenerator,
        cf: Tensor,
        fake: Tensor,
        target: Tensor,
        mask: Tensor,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Return the weighted generator terms and the discriminator terms of one step."""
        p, aux = self.params, self.aux
        assert aux is not None
        disc = aux.discriminator
        pair_real = torch.cat([cf, target], dim=1)
        pair_fake = torch.cat([cf, fake], dim=1)
        pred_real = disc(pair_real)
        pred_fake_det = disc(pair_fake.detach())
        pred_fake = disc(pair_fake)
        g_terms: dict[str, Tensor] = {"G_GAN": p.gan_weight * lsgan(pred_fake, True)}
        d_terms: dict[str, Tensor] = {
            "D_real": lsgan(pred_real, True),
            "D_fake": lsgan(pred_fake_det, False),
        }
        pred_real_temp = pred_fake_temp = None
        if p.knowledge_aware:
            pred_real_temp = disc(pair_real * mask)
            pred_fake_temp = disc(pair_fake * mask)
            d_terms["D_real_temp"] = lsgan(pred_real_temp, True)
            d_terms["D_fake_temp"] = lsgan(disc(pair_fake.detach() * mask), False)
            g_terms["G_GAN_temp"] = p.gan_temp_weight * lsgan(pred_fake_temp, True)
        if p.feature_matching:
            n_layers = p.discriminator.n_layers
            if p.mode == "faithful" and pred_real_temp is not None:
                # the original overwrites pred_real with the masked call before this term
                fm = feature_matching(pred_fake, pred_real_temp, n_layers, p.feat_weight)
            else:
                fm = feature_matching(pred_fake, pred_real, n_layers, p.feat_weight)
                if pred_fake_temp is not None and pred_real_temp is not None:
                    fm = fm + feature_matching(
                        pred_fake_temp, pred_real_temp, n_layers, p.feat_weight
                    )
            g_terms["G_GAN_Feat"] = fm
        if self.vgg is not None:
            g_terms["G_VGG"] = self.vgg({"logits": fake}, {"target": target}).total
        if p.gradient_variance is not None:
            gv = p.gradient_variance
            g_terms["G_seg"] = gv.weight * gradient_variance(fake, target, gv.patch_size)
        if aux.nce is not None:
            nce = aux.nce(
                {"logits": fake, "encoder": generator},
                {"image": cf, "target": target, "knowledge_mask": mask},
            )
            g_terms["G_NCE"] = nce.total
        return g_terms, d_terms

    def train_step(self, step: StepContext, batch: dict[str, Any]) -> LossOutput:
        """Run every window step of the batch's videos with its own G, F and D updates."""
        p = self.params
        aux = self.aux if self.aux is not None else self.build_aux(step.model)
        if aux.videos_seen.device != step.device:
            aux.to(step.device)
        if self.vgg is not None:
            self.vgg.to(step.device)
        generator = find_generator(step.model)
        cf, video = batch["image"], batch["video"]
        if video.ndim != 5 or video.shape[0] != cf.shape[0]:
            raise ComponentError(
                "knowledge_mask.adversarial: batch['video'] must be (B, M, 3, H, W) with the "
                f"batch size of batch['image']; got {tuple(video.shape)} and {tuple(cf.shape)}"
            )
        mask = batch.get("knowledge_mask")
        if mask is None:
            if p.knowledge_aware or p.nce is not None:
                raise ComponentError(
                    "knowledge_mask.adversarial needs batch['knowledge_mask']; add "
                    "knowledge_mask.mask to data.transforms.train after "
                    "knowledge_mask.fov_preprocess"
                )
            mask = torch.ones_like(cf[:, :1])
        num_frames = video.shape[1]
        # The original counts this batch's videos before its forward pass (total_steps += B)
        aux.videos_seen += cf.shape[0]
        p_generated = sampling_probability(int(aux.videos_seen), p.sampling_ramp, p.sampling_every)
        sums: dict[str, float] = defaultdict(float)
        previous: Tensor | None = None
        for n in range(num_frames):
            target = step_target(video, n)
            if n == 0:
                context = cf
            elif previous is not None and float(torch.rand(())) < p_generated:
                context = previous
            else:
                context = context_window(video, n)
            with step.autocast():
                out = step.model(
                    {
                        "image": cf,
                        "context": context,
                        "knowledge_mask": mask,
                        "target": target,
                        "videos_seen": int(aux.videos_seen),
                    }
                )
                fake = out["logits"]
                g_terms, d_terms = self._generator_terms(generator, cf, fake, target, mask)
                aux_losses = out.get("aux_losses") or {}
                loss_g = sum(g_terms.values()) + sum(aux_losses.values())
                half = 0.5 * (d_terms["D_fake"] + d_terms["D_real"])
                if "D_fake_temp" in d_terms:
                    half = half + 0.5 * (d_terms["D_fake_temp"] + d_terms["D_real_temp"])
                loss_d = half
            step.backward(loss_g, optimizer="main")
            step.step(optimizer="main")
            if "projection" in step.optimizers:
                step.step(optimizer="projection")
            step.optimizers["discriminator"].zero_grad(set_to_none=True)
            step.backward(loss_d, optimizer="discriminator")
            step.step(optimizer="discriminator")
            previous = fake.detach()  # truncated back-propagation: no gradient across steps
            for name, value in {**g_terms, **d_terms, **aux_losses}.items():
                sums[name] += float(value.detach())
            sums["loss_G"] += float(loss_g.detach())
            sums["loss_D"] += float(loss_d.detach())
        terms = {k: torch.tensor(v / num_frames) for k, v in sums.items() if k != "loss_G"}
        terms["p_generated"] = torch.tensor(p_generated)
        return LossOutput(torch.tensor(sums["loss_G"] / num_frames), terms)

    def example_batch(self, ctx: BuildContext, batch_size: int = 4) -> dict[str, Any]:
        """Return 2 tiny 3-frame videos with CF images and knowledge masks (32×32)."""
        gen = torch.Generator().manual_seed(0)
        size, frames = 32, 3
        video = torch.rand(2, frames, 1, size, size, generator=gen).expand(-1, -1, 3, -1, -1)
        return {
            "image": torch.rand(2, 3, size, size, generator=gen) * 2 - 1,
            "video": (video * 2 - 1).contiguous(),
            "knowledge_mask": (torch.rand(2, 1, size, size, generator=gen) > 0.5).float(),
        }
