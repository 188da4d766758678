"""Evaluation-time adapters: post-hoc logit adjustment, τ-normalisation, NCM (KNN, cl2n).

They change the logits only when the model is in evaluation mode (the engine's validation and
test passes); in training mode they return the wrapped model's output unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, Batch, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_longtail import _functional as fn
from asklepios_longtail._heads import feature_dim, find_classifier, freeze_module
from asklepios_longtail.params import NCMClassifierParams, PosthocLAParams, TauNormParams

__all__ = [
    "EvaluationTimeAdapter",
    "NCMClassifier",
    "PosthocLA",
    "TauNorm",
]


class EvaluationTimeAdapter(Adapter):
    """Base: pass the wrapped model's output through in training, adjust it in evaluation."""

    def wrap(self, model: nn.Module) -> nn.Module:
        self.model = model
        self.feature_dim = getattr(model, "feature_dim", 0)
        return self

    def adjust(self, out: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        raise ComponentError(f"{type(self).__name__} does not implement adjust()")

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        return out if self.training else self.adjust(out, batch)


class PosthocLA(EvaluationTimeAdapter):
    """Adjust logits at evaluation: z_c − log((n_c/n_max)^τ + 1e−12) (post-hoc LA).

    Model selection, argmax and AUC all see the adjusted logits. References: Menon et al.,
    ICLR 2021. MONICA ``main.py:eval`` (``Logits_Adjust_Posthoc``).
    """

    shift: Tensor

    def __init__(self, params: PosthocLAParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        counts = fn.check_counts(ctx.data.class_counts, type(self).__name__)
        shift = np.log(np.power(counts / counts.max(), params.tau) + params.eps)
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))

    def adjust(self, out: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        out["logits"] = out["logits"] - self.shift.to(out["logits"].dtype)
        return out


class TauNorm(EvaluationTimeAdapter):
    """Evaluate with τ-normalised classifier weights: logits_c = f · w_c / ‖w_c‖^τ (no bias).

    References: Kang et al., ICLR 2020. MONICA ``main.py:eval`` (``T-Norm``).
    """

    def __init__(self, params: TauNormParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self._classifier_ref: list[nn.Linear] = []

    def wrap(self, model: nn.Module) -> nn.Module:
        super().wrap(model)
        self._classifier_ref = [
            find_classifier(model, self.params.classifier_path, type(self).__name__)
        ]
        return self

    def adjust(self, out: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        classifier = self._classifier_ref[0]
        weight = classifier.weight
        normed = weight / weight.norm(dim=1, keepdim=True).pow(self.params.tau)
        bias = classifier.bias if self.params.keep_bias else None
        out["logits"] = F.linear(out["features"], normed, bias)
        return out


class NCMClassifier(EvaluationTimeAdapter):
    """Classify by the nearest class mean of collected training features (MONICA's KNN).

    The ``longtail.collect`` trainer feeds training batches to :meth:`collect`; at evaluation
    the centroids c_k = mean over class k of f' = (f − μ)/‖f − μ‖ are fitted (μ = mean training
    feature; summed across ranks) and logits = −‖f'_test − c_k‖² (``dist: l2``), or MONICA's
    ``cos`` f'_test·c_k / d, or the true cosine (``dist: cosine``).

    References: Kang et al., ICLR 2020. MONICA ``models/KNNClassifier.py``.
    """

    def __init__(self, params: NCMClassifierParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        num = params.num_classes or ctx.data.num_classes
        if not num:
            raise ComponentError(f"{type(self).__name__} needs the number of classes")
        self.num_classes = int(num)
        self._features: list[Tensor] = []
        self._labels: list[Tensor] = []
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("centroids", torch.zeros(0))

    def wrap(self, model: nn.Module) -> nn.Module:
        super().wrap(model)
        self.feature_dim = feature_dim(model, type(self).__name__)
        if self.params.freeze_encoder:
            freeze_module(model)
        return self

    def reset_collection(self) -> None:
        """Forget the collected training features."""
        self._features, self._labels = [], []

    @torch.no_grad()
    def collect(self, batch: Batch) -> None:
        """Run the wrapped model on a training batch and keep its features and labels."""
        out = self.model(batch)
        self._features.append(out["features"].detach().float())
        self._labels.append(batch["label"].detach().long())

    def _normalise(self, f: Tensor) -> Tensor:
        if self.params.feat_type == "cl2n":
            f = f - self.mean
        if self.params.feat_type in ("cl2n", "l2n"):
            f = f / f.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return f

    @torch.no_grad()
    def fit(self) -> None:
        """Compute μ and the class centroids from the collected features."""
        feats = torch.cat(self._features)
        labels = torch.cat(self._labels)
        stats = torch.cat([feats.sum(dim=0), feats.new_tensor([len(feats)])])
        _all_reduce(stats)
        self.mean = stats[:-1] / stats[-1].clamp(min=1)
        normed = self._normalise(feats)
        onehot = F.one_hot(labels, self.num_classes).to(normed.dtype)
        sums = torch.cat([onehot.T @ normed, onehot.sum(dim=0)[:, None]], dim=1)
        _all_reduce(sums)
        self.centroids = sums[:, :-1] / sums[:, -1:].clamp(min=1)
        self.reset_collection()

    def adjust(self, out: dict[str, Tensor], batch: Batch) -> dict[str, Tensor]:
        if self._features:
            self.fit()
        if self.centroids.numel() == 0:
            raise ComponentError(
                f"{type(self).__name__} has no class centroids: run a stage with the "
                "longtail.collect trainer over the training split before evaluating"
            )
        f = self._normalise(out["features"].float())
        if self.params.dist == "l2":
            logits = -torch.cdist(f, self.centroids).pow(2)
        elif self.params.dist == "cos":
            logits = f @ self.centroids.T / f.shape[1]
        else:
            logits = F.normalize(f, dim=1) @ F.normalize(self.centroids, dim=1).T
        out["logits"] = logits.to(out["features"].dtype)
        return out

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        for name in ("mean", "centroids"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args)


def _all_reduce(tensor: Tensor) -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
