"""Guided generation: DDIM inversion of a layout, then guided DDIM denoising with CFG (§2.4).

For each request (a layout image, a caption, an AU vector, a target expression):

1. *Layout initialisation.* The layout's VAE latent is DDIM-inverted over the lowest
   ``invert_steps`` timesteps of a ``steps``-step schedule, conditioned on
   ``inversion_prompt`` and the unconditional AU token, without CFG ([repro]: 35 of 50).
   Without ``layout`` the start is Gaussian noise drawn from the item's seed.
2. *Guided denoising* back down the same timesteps. From step ``guidance_start`` on (0-based:
   denoising step ``i`` is guided when ``i >= guidance_start``; 15 of 35 guides the last 20),
   the text embedding first takes a semantic-guidance step (x̂₀ from the conditional ε only,
   decoded, the classifier's CE, a normalised step: :class:`~asklepios_synfer.guidance.
   SemanticGuidance`); then ε = ε_u + cfg·(ε_c − ε_u), with the negative prompt and the
   unconditional AU token (the projector applied to zeros) as the unconditional branch, and a
   DDIM step.

Per guided step this adds one UNet forward and backward through the conditional branch, one VAE
decode and one classifier forward and backward to the plain step's batched CFG UNet call.
:attr:`GuidedGeneration.counts` keeps these per image, for the benchmark.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from asklepios_sdk import Adapter, BuildContext, ComponentError
from asklepios_sdk.synthesis import DatasetGenerator
from torch import Tensor, nn

from asklepios_synfer._ddim import ddim_denoise, ddim_invert, level_alphas, x0_from_eps
from asklepios_synfer.au_adapter import AUAdapter, find_ldm
from asklepios_synfer.classifiers import Classifier, build_classifier, reference_key
from asklepios_synfer.guidance import SemanticGuidance
from asklepios_synfer.params import GuidedGenerationParams

__all__ = ["GuidedGeneration"]


def _find_au(model: nn.Module) -> AUAdapter | None:
    found: Any = model
    while found is not None:
        if isinstance(found, AUAdapter):
            return found
        found = getattr(found, "model", None)
    return None


class GuidedGeneration(Adapter, DatasetGenerator):
    """Generate labelled images: DDIM inversion of a layout, semantic guidance, CFG.

    Wraps ``synfer.ldm`` (with ``synfer.au_adapter`` in between for AU conditioning). As a
    generation stage's model it makes one item per request: the requests carry ``image``
    (layout, [0, 1]), ``text`` (caption), ``label`` (target class) and ``meta.au``.
    ``forward(batch)`` is the wrapped model's (training) forward.
    """

    def __init__(self, params: GuidedGenerationParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.guidance = SemanticGuidance(params.guidance, ctx)
        classifier = None
        if params.classifier is not None:
            classifier = build_classifier(params.classifier, ctx, "guided_generation")
        # an external frozen model, kept out of the module tree: not the generator's weights
        self.__dict__["_classifier"] = classifier
        self.counts: Counter[str] = Counter()

    @property
    def classifier(self) -> Classifier | None:
        """Return the guidance classifier (``None``: no semantic guidance)."""
        return cast("Classifier | None", self.__dict__["_classifier"])

    @property
    def ldm(self) -> Any:
        """Return the wrapped ``synfer.ldm``."""
        return find_ldm(self.model)

    def wrap(self, model: nn.Module) -> nn.Module:
        find_ldm(model)  # fails early, with the fix, when there is none
        self.model = model
        return self

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        return cast(dict[str, Tensor], self.model(batch))

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return the wrapped synfer.ldm's example batch."""
        return cast(dict[str, Any], self.ldm.example_batch(ctx, batch_size))

    def generation_metadata(self) -> dict[str, Any]:
        """Describe the generation, with the guidance classifier's id (for the evaluators)."""
        p = self.params
        facts: dict[str, Any] = {
            "method": "synfer.guided_generation",
            "steps": p.steps,
            "invert_steps": p.invert_steps,
            "guidance_start": p.guidance_start,
            "cfg": p.cfg,
            "guidance": p.guidance.model_dump(mode="json"),
            "guidance_classifier": None,
        }
        if self.classifier is not None and p.classifier is not None:
            component, source = reference_key(p.classifier)
            facts["guidance_classifier"] = {
                "id": self.classifier.model_id,
                "component": component,
                "source": source,
            }
        return facts

    # -- the loop --------------------------------------------------------------------------

    def _cond(self, text: Tensor, au_tokens: Tensor | None) -> Tensor:
        return torch.cat([text, au_tokens], dim=1) if au_tokens is not None else text

    def _guide(
        self, x: Tensor, t: int, alpha: float, c_text: Tensor, au: Tensor | None, target: Tensor
    ) -> Tensor:
        """Return the text embedding after one semantic-guidance step at ``(x, t)``."""
        assert self.classifier is not None
        with torch.enable_grad():
            c = c_text.detach().requires_grad_(True)
            eps = self.ldm.eps(x, t, self._cond(c, au.detach() if au is not None else None))
            image = self.ldm.decode_latents(x0_from_eps(x, eps, alpha))
            result = self.guidance({"logits": self.classifier(image)}, {"label": target})
            (grad,) = torch.autograd.grad(result.total, c)
        n = x.shape[0]
        self.counts.update(unet=n, unet_backward=n, vae_decode=n, classifier_backward=n)
        return self.guidance.update(c_text, grad).detach()

    @torch.no_grad()
    def generate_latents(self, batch: Mapping[str, Any], seeds: Sequence[int]) -> Tensor:
        """Return the clean latents generated for ``batch`` (see the module docstring)."""
        p, ldm = self.params, self.ldm
        size = len(seeds)
        device = ldm.alphas_cumprod.device
        texts = [str(t) for t in batch["text"]]
        au_adapter = _find_au(self.model)
        au_tokens = uncond_tokens = None
        if au_adapter is not None:
            meta = batch.get("meta") or {}
            au = meta.get("au") if isinstance(meta, Mapping) else None
            if au is None:
                raise ComponentError("synfer.guided_generation: requests need meta.au (AUs)")
            au_tokens = au_adapter.tokens(au.to(device).float())
            uncond_tokens = au_adapter.uncond_tokens(size, device)
        c_text = ldm.encode_text(texts)
        negative = ldm.encode_text([p.negative_prompt] * size)
        window = ldm.timesteps(p.steps)[: p.invert_steps]
        alphas = level_alphas(ldm.alphas_cumprod.cpu(), window, ldm.final_alpha)
        if p.layout:
            if batch.get("image") is None:
                raise ComponentError("synfer.guided_generation: layout needs request images")
            inversion = self._cond(ldm.encode_text([p.inversion_prompt] * size), uncond_tokens)

            def eps_inv(x: Tensor, t: int) -> Tensor:
                self.counts.update(unet=size)
                return cast(Tensor, ldm.eps(x, t, inversion))

            x = ddim_invert(ldm.encode_images(batch["image"].to(device)), eps_inv, window, alphas)
        else:
            side = ldm.resolution // (2 ** (len(ldm.vae.config.block_out_channels) - 1))
            noise = [
                torch.randn(4, side, side, generator=torch.Generator().manual_seed(int(s)))
                for s in seeds
            ]
            x = torch.stack(noise).to(device)
        target = batch.get("label")
        guided = self.classifier is not None and target is not None
        state = {"c_text": c_text}
        by_t = {int(t): alphas[k + 1] for k, t in enumerate(window)}

        def on_step(i: int, t: int, x: Tensor) -> Tensor:
            if guided and i >= p.guidance_start:
                state["c_text"] = self._guide(
                    x, t, by_t[t], state["c_text"], au_tokens, cast(Tensor, target).to(device)
                )
            return x

        def eps_cfg(x: Tensor, t: int) -> Tensor:
            cond = self._cond(state["c_text"], au_tokens)
            uncond = self._cond(negative, uncond_tokens)
            both = ldm.eps(torch.cat([x, x]), t, torch.cat([uncond, cond]))
            self.counts.update(unet=2 * size)
            eps_u, eps_c = both.chunk(2)
            return cast(Tensor, eps_u + p.cfg * (eps_c - eps_u))

        return ddim_denoise(x, eps_cfg, window, alphas, on_step)

    def generate_items(
        self, batch: Mapping[str, Any], seeds: Sequence[int]
    ) -> list[dict[str, Any]]:
        """Return one image per request, with its intended label, caption and AU vector."""
        latents = self.generate_latents(batch, seeds)
        with torch.no_grad():
            images = self.ldm.decode_latents(latents).clamp(0, 1)
        self.counts.update(vae_decode=len(seeds), images=len(seeds))
        pixels = (images * 255).round().to(torch.uint8).cpu()
        labels = batch.get("label")
        meta = batch.get("meta") or {}
        au = meta.get("au") if isinstance(meta, Mapping) else None
        names = self.params.class_names
        items = []
        for i in range(len(seeds)):
            item: dict[str, Any] = {"image": pixels[i], "caption": str(batch["text"][i])}
            if labels is not None:
                item["label"] = int(labels[i])
                if names is not None and 0 <= item["label"] < len(names):
                    item["expression"] = names[item["label"]]
            if au is not None:
                item["au"] = [round(float(v)) for v in au[i].tolist()]
            items.append(item)
        return items
