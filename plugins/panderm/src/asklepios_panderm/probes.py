"""Probes on frozen features: PanDerm's L-BFGS logistic regression and a kNN classifier (§6.1).

Both declare ``fit_split = "train"``: within one ``asklepios run`` the engine passes the training
split's features (evaluation transforms, eval mode) through :meth:`update`, calls :meth:`fit`, then
evaluates val and test. Features are computed once per model state and shared by every probe of
the run (several label fractions, both penalties, kNN), since one pass feeds them all. They are
held in memory only: the core's on-disk feature cache serves ``core.open_clip``, so another run
encodes the splits again.

The linear probe is the repo's ``LogisticRegression``: ``Linear(D, K)`` initialised after
``torch.manual_seed(seed)``, one full-batch ``LBFGS(line_search_fn="strong_wolfe",
max_iter=1000)`` step on ``mean CE + (1/C) 0.5 ||W||_F`` (the Frobenius norm, not its square;
bias not regularised), ``C = D K / 100``. The metrics are the repo's ``get_eval_metrics`` with
scikit-learn: acc, balanced acc, quadratic kappa, weighted F1, AUROC (binary: ``probs[:, 1]``;
else one-vs-one macro) and macro average precision.
"""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import Batch, BuildContext, ComponentError, Evaluator
from torch import Tensor
from torchmetrics.utilities import dim_zero_cat

from asklepios_panderm.params import KNNProbeParams, LinearProbeParams
from asklepios_panderm.samplers import label_fraction_indices

__all__ = [
    "METRIC_KEYS",
    "KNNProbe",
    "LinearProbe",
    "classification_metrics",
    "fit_logistic_regression",
    "probe_penalty",
]

METRIC_KEYS = ("acc", "bacc", "kappa", "weighted_f1", "auroc", "aupr")


def probe_penalty(weight: Tensor, C: float, penalty: Literal["frobenius", "squared"]) -> Tensor:
    """Return the regulariser: ``0.5 ||W||_F / C`` (the repo's) or ``0.5 ||W||_F^2 / C``."""
    norm = weight.norm(p=2)
    return 0.5 * (norm if penalty == "frobenius" else norm.square()) / C


def fit_logistic_regression(
    features: Tensor,
    labels: Tensor,
    *,
    num_outputs: int,
    C: float,
    penalty: Literal["frobenius", "squared"] = "frobenius",
    max_iter: int = 1000,
    seed: int = 0,
) -> torch.nn.Linear:
    """Fit ``Linear(D, num_outputs)`` by one full-batch strong-Wolfe L-BFGS step.

    ``torch.manual_seed(seed)`` precedes the default PyTorch init of the layer, as in the repo;
    the global generator is restored afterwards.
    """
    features, labels = features.float(), labels.long()
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.manual_seed(seed)
        model = torch.nn.Linear(features.shape[1], num_outputs).to(features.device)
        optimizer = torch.optim.LBFGS(
            model.parameters(), line_search_fn="strong_wolfe", max_iter=max_iter
        )

        def closure() -> Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(features), labels)
            loss = loss + probe_penalty(model.weight, C, penalty)
            loss.backward()
            return loss

        optimizer.step(closure)
    return model.requires_grad_(False)


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Return the repo's metric set from labels and class probabilities ``[N, K]``.

    Predictions are ``argmax``. AUROC and AUPR use ``probs[:, 1]`` when ``K == 2`` and are NaN
    when the labels hold a single class (the repo prints the error and leaves them out).
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        cohen_kappa_score,
        f1_score,
        roc_auc_score,
    )

    preds = probs.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-class slices: sklearn warns, we report NaN
        out = {
            "acc": float(accuracy_score(labels, preds)),
            "bacc": float(balanced_accuracy_score(labels, preds)),
            "kappa": float(cohen_kappa_score(labels, preds, weights="quadratic")),
            "weighted_f1": float(f1_score(labels, preds, average="weighted", zero_division=0)),
        }
        scores = probs[:, 1] if probs.shape[1] == 2 else probs
        try:
            if probs.shape[1] == 2:
                out["auroc"] = float(roc_auc_score(labels, scores))
            else:
                out["auroc"] = float(
                    roc_auc_score(labels, scores, multi_class="ovo", average="macro")
                )
            out["aupr"] = float(average_precision_score(labels, scores, average="macro"))
        except ValueError:
            out["auroc"] = out["aupr"] = math.nan
    return out


class _FeatureProbe(Evaluator):
    """Collect ``(features, label, index)`` per sample; :meth:`fit` on the train split."""

    fit_split: ClassVar[str | None] = "train"
    higher_is_better = True

    features: list[Tensor]
    labels: list[Tensor]
    indices: list[Tensor]

    def __init__(self, prefix: str, name: str, ctx: BuildContext) -> None:
        super().__init__()
        self.prefix = prefix
        self.name = name  # type: ignore[misc]  # instance name: several probes per run
        self.num_classes = ctx.data.num_classes
        self.output_keys = tuple(prefix + k for k in METRIC_KEYS)  # type: ignore[misc]
        self.headline_keys = (prefix + "bacc", prefix + "acc")  # type: ignore[misc]
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")
        self.fitted = False

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        features = outputs.get("features")
        if not isinstance(features, Tensor) or features.dim() != 2:
            raise ComponentError(
                f"panderm.{type(self).__name__}: the model output has no 2-D 'features' "
                "(panderm.vit returns the CLS feature in 'features')"
            )
        labels = batch["label"].reshape(-1).long()
        index = batch.get("index")
        if not isinstance(index, Tensor):  # datasets without row ids keep arrival order
            index = torch.full_like(labels, -1)
        self.features.append(features.detach().float())
        self.labels.append(labels)
        self.indices.append(index.reshape(-1).long().to(labels.device))

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return 24 samples of 3 separable Gaussian classes with features and row ids."""
        gen = torch.Generator().manual_seed(3)
        labels = torch.arange(24) % 3
        means = torch.randn(3, 16, generator=gen) * 3
        features = means[labels] + torch.randn(24, 16, generator=gen)
        batch = {"image": torch.zeros(24, 1), "label": labels, "index": torch.arange(24)}
        return {"features": features, "logits": features[:, :3]}, batch

    def _collected(self) -> tuple[Tensor, Tensor]:
        """Return every rank's ``(features, labels)``, in row order when rows carry ids."""
        features, labels = dim_zero_cat(self.features), dim_zero_cat(self.labels)
        indices = dim_zero_cat(self.indices)
        if bool((indices >= 0).all()):
            order = torch.argsort(indices, stable=True)
            features, labels = features[order], labels[order]
        return features, labels

    def _subset(self, labels: Tensor, fraction: float, mode: Any, seed: int) -> Tensor:
        if fraction >= 1.0:
            return torch.arange(len(labels), device=labels.device)
        kept = label_fraction_indices(labels.cpu().numpy(), fraction, mode, seed)
        if not len(kept):
            raise ComponentError(
                f"{self.name}: label fraction {fraction} of {len(labels)} train samples keeps none"
            )
        return torch.as_tensor(kept, device=labels.device)

    def fit(self) -> None:
        with self.sync_context():
            features, labels = self._collected()
        if not len(labels):
            raise ComponentError(f"{self.name}: the train split gave no samples to fit on")
        self._fit(features, labels)
        self.fitted = True

    @abstractmethod
    def _fit(self, features: Tensor, labels: Tensor) -> None:
        """Fit the probe on the collected train features and labels."""

    @abstractmethod
    def _probs(self, features: Tensor) -> Tensor:
        """Return class probabilities ``[N, K]`` for ``features``."""

    def compute(self) -> dict[str, float]:
        if not self.fitted:
            raise ComponentError(
                f"{self.name}: compute() before fit(); the engine fits it on split "
                f"{self.fit_split!r} first (asklepios >= 0.2 with Evaluator.fit_split)"
            )
        features, labels = self._collected()
        probs = self._probs(features).double().cpu().numpy()
        metrics = classification_metrics(labels.cpu().numpy(), probs)
        return {self.prefix + k: v for k, v in metrics.items()}


class LinearProbe(_FeatureProbe):
    """Fit PanDerm's L-BFGS logistic regression on frozen train features; report §6.1 metrics.

    ``C = D K / 100`` (K: classes present among the fitted train labels), the unsquared Frobenius
    penalty by default (``penalty: squared`` for conventional L2), an optional label fraction of
    the train split (stratified >= 1 per class, or v1).
    """

    def __init__(self, params: LinearProbeParams, ctx: BuildContext) -> None:
        super().__init__(params.prefix, params.name, ctx)
        self.params = params
        self.classifier: torch.nn.Linear | None = None
        self.cost: float | None = None

    def _fit(self, features: Tensor, labels: Tensor) -> None:
        p = self.params
        keep = self._subset(labels, p.label_fraction, p.fraction_mode, p.fraction_seed)
        features, labels = features[keep], labels[keep]
        present = int(labels.unique().numel())
        outputs = max(int(labels.max()) + 1, self.num_classes or 0)
        self.cost = p.C if p.C is not None else features.shape[1] * present / 100.0
        self.classifier = fit_logistic_regression(
            features,
            labels,
            num_outputs=outputs,
            C=self.cost,
            penalty=p.penalty,
            max_iter=p.max_iter,
            seed=p.seed,
        )

    def _probs(self, features: Tensor) -> Tensor:
        assert self.classifier is not None
        return self.classifier(features.float()).softmax(dim=-1)


class KNNProbe(_FeatureProbe):
    """Classify frozen features by their k nearest train features (cosine; asklepios addition).

    Not part of PanDerm (spec §6.3: no kNN evaluation there). Votes are ``exp(cos / T)``
    (``weighted``, DINO's rule) or 1 (``uniform``); the normalised votes serve as probabilities.
    """

    def __init__(self, params: KNNProbeParams, ctx: BuildContext) -> None:
        super().__init__(params.prefix, params.name, ctx)
        self.params = params
        self.bank: Tensor | None = None
        self.bank_labels: Tensor | None = None
        self.classes = 0

    def _fit(self, features: Tensor, labels: Tensor) -> None:
        p = self.params
        keep = self._subset(labels, p.label_fraction, p.fraction_mode, p.fraction_seed)
        self.bank = F.normalize(features[keep].float(), dim=1)
        self.bank_labels = labels[keep]
        self.classes = max(int(labels.max()) + 1, self.num_classes or 0)

    def _probs(self, features: Tensor) -> Tensor:
        assert self.bank is not None and self.bank_labels is not None
        similarity = F.normalize(features.float(), dim=1) @ self.bank.T
        k = min(self.params.k, self.bank.shape[0])
        top, index = similarity.topk(k, dim=1)
        if self.params.weighting == "weighted":
            weights = (top / self.params.temperature).exp()
        else:
            weights = torch.ones_like(top)
        votes = torch.zeros(features.shape[0], self.classes, device=features.device)
        votes.scatter_add_(1, self.bank_labels[index], weights)
        return votes / votes.sum(dim=1, keepdim=True)
