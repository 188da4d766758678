"""Stage-1 losses: ``ldfs.text_guided_loss``, ``ldfs.pairwise_regularizer`` and their sum.

They read what ``ldfs.synthesizer`` returns: ``features`` ``(B, d)``, ``synthetic``
``(B, K, M, d)``, ``text_source`` ``(S, C, d)`` and ``text_target`` ``(K, C, d)`` (noised by
``ldfs.text_noise`` during training), and ``batch["label"]``.

References:
    Yan et al., arXiv 2405.02586 (LDFS; losses reconstructed from the abstract and summaries).
    Dunlap et al., ICLR 2023 (LADS; directional and class-consistency terms, verified from code).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, Loss, LossOutput
from torch import Tensor

from asklepios_ldfs import _functional as fn
from asklepios_ldfs.params import (
    PairwiseRegularizerParams,
    SynthesisObjectiveParams,
    TextGuidedLossParams,
)

__all__ = [
    "PairwiseRegularizer",
    "SynthesisObjective",
    "TextGuidedLoss",
    "example_synthesis_outputs",
]

_REQUIRED = ("features", "synthetic", "text_source", "text_target")


def _class_text(ctx: BuildContext, name: str) -> Tensor:
    sets = ctx.data.extras.get("text_features") or {}
    if name not in sets:
        raise ComponentError(
            f"ldfs.text_guided_loss: cc_classes 'class_text' needs the text set {name!r} (the "
            f"plain class prompts) in the data facts; available: {sorted(sets)}. Add it to "
            f"core.clip_features' prompt_sets (e.g. {name}: ['a photo of a {{}}'], LADS's "
            "matrix) or set class_text_set to an existing set"
        )
    table = torch.as_tensor(np.asarray(sets[name]), dtype=torch.float32)
    return F.normalize(table, dim=-1)


def _check(outputs: Mapping[str, Any], component: str) -> None:
    missing = [key for key in _REQUIRED if key not in outputs]
    if missing:
        raise ComponentError(
            f"{component}: model outputs lack {missing}; put 'ldfs.synthesizer' in model.adapters"
        )


def example_synthesis_outputs(
    ctx: BuildContext, batch_size: int = 4, domains: int = 2, dim: int = 8
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Return ``(outputs, batch)`` shaped like ``ldfs.synthesizer``'s (conformance kit, tests)."""
    gen = torch.Generator().manual_seed(3)
    classes = ctx.data.num_classes or 3
    features = F.normalize(torch.randn(batch_size, dim, generator=gen), dim=-1)
    synthetic = F.normalize(
        features[:, None, None] + 0.3 * torch.randn(batch_size, domains, 1, dim, generator=gen),
        dim=-1,
    ).requires_grad_(True)
    outputs = {
        "features": features,
        "synthetic": synthetic,
        "noise": torch.randn(batch_size, domains, 1, 4, generator=gen),
        "synthetic_b": F.normalize(synthetic.detach() + 0.1, dim=-1),
        "noise_b": torch.randn(batch_size, domains, 1, 4, generator=gen),
        "text_source": F.normalize(torch.randn(1, classes, dim, generator=gen), dim=-1),
        "text_target": F.normalize(torch.randn(domains, classes, dim, generator=gen), dim=-1),
    }
    batch = {"label": torch.arange(batch_size) % classes}
    return outputs, batch


class TextGuidedLoss(Loss):
    """Combine the directional and class-consistency terms on the synthetic features.

    ``total = alpha L_dir + (1 - alpha) L_cc``;
    ``L_dir = mean_i,k [1 - cos(f~_ik - f_i, t^k_y - t^{s_j*}_y)]`` (or the instance anchor),
    ``L_cc = CE(cos(f~_ik, T_k) / tau, y_i)`` with ``T_k`` the class text of domain ``k``.
    The LADS loss is ``cc_temperature: null, cc_classes: class_text, class_weighted: true`` with
    the synthesiser's ``arch: lads``, whose raw output (``synthetic_raw``) the directional term
    takes.
    """

    class_weights: Tensor | None
    class_text: Tensor | None

    def __init__(self, params: TextGuidedLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        class_text = None
        if params.cc_classes == "class_text":
            class_text = _class_text(ctx, params.class_text_set)
        self.register_buffer("class_text", class_text, persistent=False)
        weights = None
        if params.class_weighted:
            counts = ctx.data.class_counts
            if not counts:
                raise ComponentError(
                    "ldfs.text_guided_loss: class_weighted needs class counts in the data facts"
                )
            weights = 1.0 / torch.tensor(counts, dtype=torch.float32).clamp_min(1)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        _check(outputs, "ldfs.text_guided_loss")
        p = self.params
        real, synthetic = outputs["features"], outputs["synthetic"]
        source, target = outputs["text_source"], outputs["text_target"]
        labels = batch["label"]
        b, k, m, d = synthetic.shape
        src = fn.select_source(real, source, labels)
        direction = (target[:, labels].transpose(0, 1) - src.unsqueeze(1)).unsqueeze(2)
        anchor_real = real[:, None, None]
        if p.anchor == "instance":
            l_dir = fn.instance_anchor_loss(anchor_real, synthetic, direction, p.eps)
        else:
            # LADS (arch: lads) measures MLP(f) - f on the raw output, before re-normalisation
            moved = outputs.get("synthetic_raw", synthetic)
            l_dir = fn.directional_loss(anchor_real, moved, direction, p.loss_type, p.eps)
        if p.cc_classes == "target":
            classes = target
        elif p.cc_classes == "class_text" and self.class_text is not None:
            classes = self.class_text[None].expand(k, -1, -1)
        else:
            classes = source[:1].expand(k, -1, -1)
        l_cc = fn.class_consistency_loss(
            synthetic.reshape(b, k * m, d),
            classes.repeat_interleave(m, dim=0),
            labels,
            p.cc_temperature,
            self.class_weights,
        )
        total = p.alpha * l_dir + (1 - p.alpha) * l_cc
        return LossOutput(total, {"directional": l_dir, "class_consistency": l_cc})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Return synthesiser-shaped ``(outputs, batch)``."""
        return example_synthesis_outputs(ctx, batch_size)


class PairwiseRegularizer(Loss):
    """Preserve the pairwise geometry of CLIP space in the synthetic features.

    ``total = weight * L_pair + diversity_weight * L_div``;
    ``L_pair = mean_{i != j} (cos(f~_i, f~_j) - cos(f_i, f_j))^2`` per domain and draw;
    ``L_div = -mean ||f~(z1) - f~(z2)|| / ||z1 - z2||`` (needs ``diversity_pair`` on the
    synthesiser).
    """

    def __init__(self, params: PairwiseRegularizerParams, ctx: BuildContext | None = None) -> None:
        super().__init__()
        self.params = params

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        _check(outputs, "ldfs.pairwise_regularizer")
        p = self.params
        real, synthetic = outputs["features"], outputs["synthetic"]
        flat = synthetic.reshape(synthetic.shape[0], -1, synthetic.shape[-1])
        if p.pair_mode == "pairwise":
            term = fn.pairwise_similarity_loss(real, flat)
        elif p.pair_mode == "nn_self":
            term = fn.nn_self_loss(real, flat, p.nn_logit_scale)
        else:
            term = fn.anchor_loss(real, flat)
        terms: dict[str, Tensor] = {p.pair_mode: term}
        total = p.weight * term
        if p.diversity_weight > 0:
            if "synthetic_b" not in outputs:
                raise ComponentError(
                    "ldfs.pairwise_regularizer: diversity_weight > 0 needs a second noise draw; "
                    "set 'diversity_pair: true' on ldfs.synthesizer"
                )
            div = fn.diversity_loss(
                synthetic, outputs["synthetic_b"], outputs["noise"], outputs["noise_b"]
            )
            terms["diversity"] = div
            total = total + p.diversity_weight * div
        return LossOutput(total, terms)

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Return synthesiser-shaped ``(outputs, batch)``."""
        return example_synthesis_outputs(ctx, batch_size)


class SynthesisObjective(Loss):
    """Sum the text-guided loss and the pairwise regulariser (the stage-1 objective).

    Terms: those of ``ldfs.text_guided_loss`` and ``ldfs.pairwise_regularizer``, with their params
    under ``text_guided`` and ``pairwise``.
    """

    def __init__(self, params: SynthesisObjectiveParams, ctx: BuildContext) -> None:
        super().__init__()
        self.text_guided = TextGuidedLoss(params.text_guided, ctx)
        self.pairwise = PairwiseRegularizer(params.pairwise, ctx)

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> LossOutput:
        guided = self.text_guided(outputs, batch)
        pair = self.pairwise(outputs, batch)
        return LossOutput(guided.total + pair.total, {**guided.terms, **pair.terms})

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Return synthesiser-shaped ``(outputs, batch)``."""
        return example_synthesis_outputs(ctx, batch_size)
