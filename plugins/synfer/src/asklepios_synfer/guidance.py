"""Semantic guidance: the CE of an external FER classifier on x̂₀ steers the text embedding.

At a guided denoising step the predicted clean latent x̂₀ is decoded, the classifier's
cross-entropy against the target expression is taken (the loss below), and the text embedding
moves by a normalised step along its gradient (:meth:`SemanticGuidance.update`):

    L_g = −log softmax(h(f(x̂₀)))_y,
    c ← c + sign · λ_g · ∇_c L_g / ‖∇_c L_g‖₂   (per token along channels by default).

``sign = −1`` (descent, toward the target) is the default; the paper's equation as transcribed
reads ``+`` (ascent), kept as ``sign = +1``. The sign convention is UNVERIFIED (spec §2.4).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.nn.functional as F
from asklepios_sdk import BuildContext, Loss, LossOutput
from torch import Tensor

from asklepios_synfer._ddim import guidance_update
from asklepios_synfer.params import SemanticGuidanceParams

__all__ = ["SemanticGuidance"]


class SemanticGuidance(Loss):
    """Score decoded x̂₀ by an external FER classifier's CE; step the text embedding on it.

    ``forward(outputs, batch)``: ``outputs["logits"]`` are the classifier's logits on the
    decoded x̂₀, ``batch["label"]`` the target expressions; the total is the summed CE (so the
    gradient of each sample's embedding is its own CE's). :meth:`update` takes the step.

    References:
        He, Luo et al., SynFER, ICCV 2025 (arXiv 2410.09865), semantic guidance.
    """

    def __init__(self, params: SemanticGuidanceParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        ce = F.cross_entropy(outputs["logits"].float(), batch["label"].long(), reduction="sum")
        return LossOutput(ce, {"guidance_ce": ce.detach() / max(1, batch["label"].numel())})

    def update(self, c_text: Tensor, grad: Tensor) -> Tensor:
        """Return ``c_text + sign·λ_g·normalise(grad)``."""
        p = self.params
        return guidance_update(c_text, grad, p.lambda_g, p.sign, p.norm, p.eps)
