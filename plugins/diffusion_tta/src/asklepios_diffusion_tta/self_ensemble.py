"""Self-ensembling of the predictions on the original and the diffusion-adapted image (DDA §3.3).

The classifier f runs on x_ref and on x̂ (the output of ``diffusion_tta.ddpm_adapter``), giving
p_o = softmax(f(x_ref)) and p_a = softmax(f(x̂)), which are fused per sample:

* ``sum`` (default): p_o + p_a; ``confidence_sum``: p_o·max p_o + p_a·max p_a;
  ``entropy_sum``: p_o·H(p_a) + p_a·H(p_o);
* ``confidence`` / ``entropy`` / ``var``: select p_a when max p_o ≤ max p_a / H(p_o) ≥ H(p_a) /
  Var p_o ≤ Var p_a, else p_o;
* ``*_fuse``: classify the blended image w_0·x_ref + w_1·x̂ with w = softmax([max p_o, max p_a]),
  softmax([H(p_a), H(p_o)]) (crossed, as in the code) or softmax([Var p_o, Var p_a]);
* ``first`` / ``second``: source-only / adapted-only.

Var is the unbiased variance over the K classes (÷ (K − 1)), as ``torch.var`` in DDA's code. With
``double_softmax`` (DDA's code, ``faithful_double_softmax``) every confidence and entropy score is
taken of softmax(p) instead of p: DDA's classifier already returns probabilities and
``model_adapt/evaluation.py`` applies ``softmax`` (and ``log_softmax``) to them again, for the
confidence modes as for the entropy modes. The variance is taken of p itself in both cases.

Probability modes return ``logits = log(p / Σp)`` (so argmax and softmax are those of the fused
distribution) plus ``probs``; ``*_fuse``, ``first`` and ``second`` return the classifier's own
output.
Every mode also returns ``logits_source`` and (except ``first``) ``logits_adapted``.

References:
    Gao et al., CVPR 2023 (DDA, ``model_adapt/test_ensemble.py``); Hu et al., arXiv 2405.11289
    (which of the modes the skin paper used is not confirmed; ``sum`` is DDA's run-script choice).
"""

from __future__ import annotations

from typing import Any, get_args

import torch
from asklepios_sdk import Adapter, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_diffusion_tta.params import FusionMode, SelfEnsembleParams

__all__ = [
    "FUSION_MODES",
    "SelfEnsemble",
    "SelfEnsembleParams",
    "fuse_probabilities",
    "fusion_weights",
]

FUSION_MODES: tuple[str, ...] = get_args(FusionMode)
PROBABILITY_MODES = ("sum", "confidence", "entropy", "var", "confidence_sum", "entropy_sum")
IMAGE_FUSE_MODES = ("confidence_fuse", "entropy_fuse", "var_fuse")


def _entropy(p: Tensor, double_softmax: bool) -> Tensor:
    if double_softmax:
        return -(p.softmax(dim=1) * p.log_softmax(dim=1)).sum(dim=1)
    return -(p * torch.log(p.clamp_min(torch.finfo(p.dtype).tiny))).sum(dim=1)


def _confidence(p: Tensor, double_softmax: bool) -> Tensor:
    return (p.softmax(dim=1) if double_softmax else p).amax(dim=1)


def _variance(p: Tensor) -> Tensor:
    return p.var(dim=1, unbiased=True)


def fuse_probabilities(p_o: Tensor, p_a: Tensor, mode: str, double_softmax: bool = False) -> Tensor:
    """Fuse two ``(B, K)`` probability batches with a probability ``mode`` (see module doc)."""
    if mode == "sum":
        return p_o + p_a
    if mode == "confidence_sum":
        c_o = _confidence(p_o, double_softmax)[:, None]
        c_a = _confidence(p_a, double_softmax)[:, None]
        return p_o * c_o + p_a * c_a
    if mode == "entropy_sum":
        h_o = _entropy(p_o, double_softmax)[:, None]
        h_a = _entropy(p_a, double_softmax)[:, None]
        return p_o * h_a + p_a * h_o
    if mode == "confidence":
        take_adapted = _confidence(p_o, double_softmax) <= _confidence(p_a, double_softmax)
    elif mode == "entropy":
        take_adapted = _entropy(p_o, double_softmax) >= _entropy(p_a, double_softmax)
    elif mode == "var":
        take_adapted = _variance(p_o) <= _variance(p_a)
    else:
        raise ComponentError(f"{mode!r} is not a probability fusion mode of {PROBABILITY_MODES}")
    return torch.where(take_adapted[:, None], p_a, p_o)


def fusion_weights(
    p_o: Tensor, p_a: Tensor, mode: str, double_softmax: bool = False
) -> tuple[Tensor, Tensor]:
    """Return the per-sample image weights ``(w_0, w_1)`` of an ``*_fuse`` mode."""
    if mode == "confidence_fuse":
        scores = torch.stack(
            [_confidence(p_o, double_softmax), _confidence(p_a, double_softmax)], dim=1
        )
    elif mode == "entropy_fuse":
        scores = torch.stack([_entropy(p_a, double_softmax), _entropy(p_o, double_softmax)], dim=1)
    elif mode == "var_fuse":
        scores = torch.stack([_variance(p_o), _variance(p_a)], dim=1)
    else:
        raise ComponentError(f"{mode!r} is not an image fusion mode of {IMAGE_FUSE_MODES}")
    weights = scores.softmax(dim=1)
    return weights[:, 0], weights[:, 1]


class SelfEnsemble(Adapter):
    """Fuse predictions on original and diffusion-adapted inputs (DDA self-ensembling).

    The classifier runs on the original and on the adapted image (from the input adapter this
    wraps, ``diffusion_tta.ddpm_adapter``); ``params.mode`` picks the fusion rule.
    """

    def __init__(self, params: SelfEnsembleParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params

    def wrap(self, model: nn.Module) -> nn.Module:
        """Attach to a ``diffusion_tta.ddpm_adapter`` (which must come first in the list)."""
        if not callable(getattr(model, "adapt", None)) or not isinstance(
            getattr(model, "model", None), nn.Module
        ):
            raise ComponentError(
                "diffusion_tta.self_ensemble wraps a model adapted by diffusion_tta.ddpm_adapter; "
                "list diffusion_tta.ddpm_adapter before diffusion_tta.self_ensemble in "
                "model.adapters"
            )
        return super().wrap(model)

    @property
    def classifier(self) -> nn.Module:
        """Return the classifier under the input adapter."""
        return self.model.model  # type: ignore[return-value]

    def _probs(self, logits: Tensor) -> Tensor:
        return logits if self.params.outputs_are_probabilities else logits.softmax(dim=1)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        classifier = self.classifier
        if self.training:
            return classifier(batch)
        mode = self.params.mode
        source = dict(classifier(batch))
        if mode == "first":
            return {**source, "logits_source": source["logits"]}
        adapted_image = self.model.adapt(batch["image"])  # type: ignore[operator]
        adapted = dict(classifier({**batch, "image": adapted_image}))
        extras = {"logits_source": source["logits"], "logits_adapted": adapted["logits"]}
        if mode == "second":
            return {**adapted, **extras}
        p_o, p_a = self._probs(source["logits"]), self._probs(adapted["logits"])
        double = self.params.faithful_double_softmax
        if mode in IMAGE_FUSE_MODES:
            w0, w1 = fusion_weights(p_o, p_a, mode, double)
            shape = (-1,) + (1,) * (batch["image"].ndim - 1)
            blend = batch["image"] * w0.view(shape) + adapted_image * w1.view(shape)
            return {**dict(classifier({**batch, "image": blend})), **extras}
        fused = fuse_probabilities(p_o, p_a, mode, double)
        normalised = fused / fused.sum(dim=1, keepdim=True)
        logits = torch.log(normalised.clamp_min(torch.finfo(normalised.dtype).tiny))
        return {**source, "logits": logits, "probs": fused, **extras}

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return the tiny batch of the wrapped input adapter."""
        inner = getattr(self, "model", None)
        if inner is not None and hasattr(inner, "example_batch"):
            return inner.example_batch(ctx, batch_size)
        return super().example_batch(ctx, batch_size)
