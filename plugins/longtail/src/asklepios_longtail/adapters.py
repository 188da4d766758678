"""Classifier adapters: cosine, causal-norm (De-Confound), DisAlign, LWS, BBN, cRT heads.

Each adapter wraps the model built so far, reads its ``features`` and replaces (or re-scales) its
``logits``. Heads that reuse the stage-1 classifier hold a reference to the wrapped model's
``nn.Linear`` and share its parameters, so that a stage's ``init_from`` (which loads the backbone
after the adapters are built) fills them with the stage-1 values.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, Batch, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_longtail._heads import feature_dim, find_classifier, freeze_module
from asklepios_longtail.params import (
    BBNHeadParams,
    CausalNormHeadParams,
    CosineHeadParams,
    CRTHeadParams,
    DisAlignHeadParams,
    LWSHeadParams,
)

__all__ = [
    "BBNHead",
    "CRTHead",
    "CausalNormHead",
    "CosineHead",
    "DisAlignHead",
    "LWSHead",
    "NormedLinear",
    "bbn_alpha",
]


def _num_classes(ctx: BuildContext, value: int | None, component: str) -> int:
    num = value or ctx.data.num_classes
    if not num:
        raise ComponentError(
            f"{component} needs the number of classes: set num_classes or use a dataset whose "
            "facts() report num_classes"
        )
    return int(num)


class _HeadAdapter(Adapter):
    """Base: keep the wrapped model, build the head once its feature width is known."""

    def __init__(self, ctx: BuildContext, num_classes: int | None = None) -> None:
        super().__init__()
        self.num_classes = _num_classes(ctx, num_classes, type(self).__name__)
        self.feature_dim = 0
        self._classifier_ref: list[nn.Linear] = []

    def wrap(self, model: nn.Module) -> nn.Module:
        self.model = model
        self.feature_dim = feature_dim(model, type(self).__name__)
        self.build_head(model)
        return self

    def build_head(self, model: nn.Module) -> None:  # pragma: no cover - abstract
        raise ComponentError(f"{type(self).__name__} does not build a head")

    def stage1_classifier(self) -> nn.Linear:
        """Return the wrapped model's classifier (parameters shared, not copied)."""
        return self._classifier_ref[0]

    def inner(self, batch: Batch) -> dict[str, Tensor]:
        out = self.model(batch)
        if "features" not in out:
            raise ComponentError(
                f"{type(self).__name__} needs the wrapped model's 'features' output, got "
                f"{sorted(out)}"
            )
        return out


class NormedLinear(nn.Module):
    """Cosine classifier: ⟨f/‖f‖, w_j/‖w_j‖⟩ with W ~ U(−1, 1) renormalised per class column."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        weight = torch.empty(in_features, out_features).uniform_(-1, 1)
        self.weight = nn.Parameter(weight.renorm(2, 1, 1e-5).mul(1e5))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


class CosineHead(_HeadAdapter):
    """Replace the classifier by a cosine (NormedLinear) head: logits_j = s·cos(f, w_j).

    Used by GCL (with ``longtail.gcl``), RSG and SADE; with ``longtail.ldam`` it gives the
    original LDAM. References: Cao et al., NeurIPS 2019; Li et al., CVPR 2022. MONICA
    ``models/GCLLayers.py``.
    """

    def __init__(self, params: CosineHeadParams, ctx: BuildContext) -> None:
        super().__init__(ctx, params.num_classes)
        self.params = params

    def build_head(self, model: nn.Module) -> None:
        self.head = NormedLinear(self.feature_dim, self.num_classes)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.inner(batch))
        out["logits"] = self.params.scale * self.head(out["features"])
        return out


class CausalNormHead(_HeadAdapter):
    """Compute De-Confound-TDE logits: multi-head causal norm, counterfactual removal at eval.

    Train: Σ_k (τ/K)⟨x̂_k, w_{c,k}/(‖w_{c,k}‖ + γ)⟩ and m ← μ m + mean_batch(x). Eval (with
    ``use_effect``): x̂_k − α cos(x̂_k, m̂_k) m̂_k replaces x̂_k. Keys on ``self.training`` as MONICA.

    References: Tang et al., NeurIPS 2020. MONICA ``models/CausalNormClassifier.py``.
    """

    weight: nn.Parameter
    embed_mean: Tensor

    def __init__(self, params: CausalNormHeadParams, ctx: BuildContext) -> None:
        super().__init__(ctx, params.num_classes)
        self.params = params

    def build_head(self, model: nn.Module) -> None:
        d, k = self.feature_dim, self.params.num_head
        if d % k:
            raise ComponentError(
                f"{type(self).__name__}: feature width {d} is not divisible by num_head={k}"
            )
        bound = 1 / math.sqrt(d)
        self.weight = nn.Parameter(torch.empty(self.num_classes, d).uniform_(-bound, bound))
        self.register_buffer("embed_mean", torch.zeros(d))

    def _chunks(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], self.params.num_head, -1)

    def causal_logits(self, features: Tensor, effect: bool) -> Tensor:
        """Return the (optionally counterfactual-corrected) causal-norm logits."""
        p = self.params
        x = F.normalize(self._chunks(features), dim=2)  # (B, K, d/K)
        w = self._chunks(self.weight)
        w = w / (w.norm(dim=2, keepdim=True) + p.gamma)  # (C, K, d/K)
        if effect:
            c = F.normalize(self._chunks(self.embed_mean[None, :]), dim=2)  # (1, K, d/K)
            cos = (x * c).sum(dim=2, keepdim=True)
            x = x - p.alpha * cos * c
        return (p.tau / p.num_head) * torch.einsum("bkd,ckd->bc", x, w)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.inner(batch))
        features = out["features"]
        if self.training:
            with torch.no_grad():
                self.embed_mean.mul_(self.params.mu).add_(features.detach().mean(dim=0))
        effect = not self.training and self.params.use_effect
        out["logits"] = self.causal_logits(features, effect)
        return out


class DisAlignHead(_HeadAdapter):
    """Align logits as (1 + σ α) ⊙ (W f + b) + σ β with σ = sigmoid(v·f + b_v) (DisAlign).

    α ∈ R^C starts at 1, β at 0, v at 0.1. Train with ``longtail.weighted_ce`` (``grw``).

    References: Zhang et al., CVPR 2021. MONICA ``models/DisAlign.py``.
    """

    def __init__(self, params: DisAlignHeadParams, ctx: BuildContext) -> None:
        super().__init__(ctx, params.num_classes)
        self.params = params

    def build_head(self, model: nn.Module) -> None:
        d, c = self.feature_dim, self.num_classes
        if self.params.mode == "original":
            classifier = find_classifier(model, self.params.classifier_path, type(self).__name__)
            self._classifier_ref = [classifier]
            freeze_module(classifier)
            self.linear = None
        else:
            self.linear = nn.Linear(d, c)
        self.confidence = nn.Linear(d, 1)
        nn.init.constant_(self.confidence.weight, self.params.confidence_init)
        self.logit_scale = nn.Parameter(torch.ones(c))
        self.logit_bias = nn.Parameter(torch.zeros(c))
        if self.params.freeze_encoder:
            freeze_module(model)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.inner(batch))
        f = out["features"]
        linear = self.linear if self.linear is not None else self.stage1_classifier()
        raw = linear(f)
        sigma = torch.sigmoid(self.confidence(f))
        out["logits"] = (1 + sigma * self.logit_scale) * raw + sigma * self.logit_bias
        return out


class LWSHead(_HeadAdapter):
    """Scale the stage-1 classifier per class: logits_c = s_c · (w_c · f + b_c) (LWS).

    s starts at 1. ``trainable: scales`` (LWS) trains only s; ``all`` (MiSLAS) also w and b.

    References: Kang et al., ICLR 2020; Zhong et al., CVPR 2021. MONICA
    ``models/TNormClassifier.py:DotProduct_Classifier``.
    """

    fresh_bias: nn.Parameter | None

    def __init__(self, params: LWSHeadParams, ctx: BuildContext) -> None:
        super().__init__(ctx, params.num_classes)
        self.params = params

    def build_head(self, model: nn.Module) -> None:
        classifier = find_classifier(model, self.params.classifier_path, type(self).__name__)
        self._classifier_ref = [classifier]
        self.scales = nn.Parameter(torch.ones(self.num_classes))
        if self.params.drop_stage1_bias:
            bound = 1 / math.sqrt(self.feature_dim)
            fresh = torch.empty(self.num_classes).uniform_(-bound, bound)
            self.fresh_bias = nn.Parameter(fresh, requires_grad=self.params.trainable == "all")
        else:
            self.fresh_bias = None
        if self.params.freeze_encoder:
            freeze_module(model)
        else:
            freeze_module(classifier)
        train_head = self.params.trainable == "all"
        for param in classifier.parameters():
            param.requires_grad_(train_head)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.inner(batch))
        classifier = self.stage1_classifier()
        bias = self.fresh_bias if self.fresh_bias is not None else classifier.bias
        out["logits"] = self.scales * F.linear(out["features"], classifier.weight, bias)
        return out


def bbn_alpha(epoch: int, epochs: int, schedule: str = "parabolic") -> float:
    """Return BBN's α(e): 1 − (e/E)² (paper) or MONICA's 1 − ((e−1)/100·(⌊E/100⌋+1))²."""
    if schedule == "monica":
        return 1 - ((epoch - 1) / 100 * (epochs // 100 + 1)) ** 2
    return 1 - (epoch / max(epochs, 1)) ** 2


class BBNHead(_HeadAdapter):
    """Classify [2α f_a ; 2(1 − α) f_b] with one linear layer, [f ; f] at evaluation (BBN).

    Trained by the ``longtail.bbn`` trainer, which puts the class-balanced batch under
    ``batch["bbn_b"]`` and α under ``batch["bbn_alpha"]``; the loss mixes the two labels with λ = α.

    References: Zhou et al., CVPR 2020. MONICA ``models/BBN.py``.
    """

    def __init__(self, params: BBNHeadParams, ctx: BuildContext) -> None:
        super().__init__(ctx, params.num_classes)
        self.params = params

    def build_head(self, model: nn.Module) -> None:
        self.head = nn.Linear(2 * self.feature_dim, self.num_classes)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.inner(batch))
        f_a = out["features"]
        if "bbn_b" in batch:
            alpha = float(batch["bbn_alpha"])
            f_b = self.inner(batch["bbn_b"])["features"]
            mixed = torch.cat([2 * alpha * f_a, 2 * (1 - alpha) * f_b], dim=1)
        else:
            mixed = torch.cat([f_a, f_a], dim=1)
        out["logits"] = self.head(mixed)
        return out


class CRTHead(_HeadAdapter):
    """Freeze the encoder and train a freshly initialised head (classifier re-training, cRT).

    References: Kang et al., ICLR 2020 (cRT). MONICA ``models/get_model.py`` (HEAD).
    """

    head: nn.Module | None

    def __init__(self, params: CRTHeadParams, ctx: BuildContext) -> None:
        super().__init__(ctx, params.num_classes)
        self.params = params

    def build_head(self, model: nn.Module) -> None:
        if self.params.reuse_stage1_head:
            self.head = None
        elif self.params.head == "cosine":
            self.head = NormedLinear(self.feature_dim, self.num_classes)
        else:
            self.head = nn.Linear(self.feature_dim, self.num_classes)
        if not self.params.finetune_all:
            freeze_module(model)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.inner(batch))
        if self.head is not None:
            logits = self.head(out["features"])
            scale = self.params.cosine_scale if self.params.head == "cosine" else 1.0
            out["logits"] = scale * logits
        return out
