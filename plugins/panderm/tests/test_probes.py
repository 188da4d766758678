"""panderm.linear_probe and panderm.knn on synthetic features (§10.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_panderm.params import KNNProbeParams, LinearProbeParams
from asklepios_panderm.probes import (
    KNNProbe,
    LinearProbe,
    classification_metrics,
    fit_logistic_regression,
    probe_penalty,
)
from asklepios_sdk import BuildContext, DataFacts

KEYS = {"lin_acc", "lin_bacc", "lin_kappa", "lin_weighted_f1", "lin_auroc", "lin_aupr"}


def _gaussians(per_class: int, classes: int = 3, dim: int = 32, seed: int = 0):
    """Classes with means 4 sigma apart (unit noise), as a batch in dataset order."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.zeros(classes, dim)
    for c in range(classes):
        means[c, c] = 4.0
    labels = torch.arange(classes).repeat_interleave(per_class)
    features = means[labels] + torch.randn(len(labels), dim, generator=gen)
    return {"features": features}, {"label": labels, "index": torch.arange(len(labels))}


def _probe(params: LinearProbeParams | None = None, classes: int = 3) -> LinearProbe:
    ctx = BuildContext(data=DataFacts(num_classes=classes))
    return LinearProbe(params or LinearProbeParams(), ctx)


def _run(probe, classes: int = 3, seed: int = 0) -> dict[str, float]:
    probe.update(*_gaussians(60, classes, seed=seed))  # train
    probe.fit()
    probe.reset()
    probe.update(*_gaussians(60, classes, seed=seed + 2))  # test
    return {k: float(v) for k, v in probe.compute().items()}


def test_probe_separates_gaussians_with_the_published_c_and_metric_set() -> None:
    """Acceptance check 4 (val, 20 per class, plays no part: the probe fits on train only)."""
    probe = _probe()
    result = _run(probe)
    assert probe.cost == pytest.approx(32 * 3 / 100)
    assert set(result) == KEYS
    assert result["lin_acc"] > 0.95
    assert result == _run(_probe())  # deterministic given the seed


def test_binary_auroc_uses_the_class_one_probability() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    probe = _probe(classes=2)
    result = _run(probe, classes=2)
    feats, batch = _gaussians(60, 2, seed=2)
    probs = probe.classifier(feats["features"]).softmax(-1).detach().numpy()  # type: ignore[misc]
    labels = batch["label"].numpy()
    assert result["lin_auroc"] == pytest.approx(roc_auc_score(labels, probs[:, 1]))
    assert result["lin_aupr"] == pytest.approx(average_precision_score(labels, probs[:, 1]))


def test_penalty_is_the_unsquared_frobenius_norm_by_default() -> None:
    weight = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # ||W||_F = 5
    assert float(probe_penalty(weight, 2.0, "frobenius")) == pytest.approx(0.5 * 5 / 2)
    assert float(probe_penalty(weight, 2.0, "squared")) == pytest.approx(0.5 * 25 / 2)


def test_lbfgs_reaches_the_objective_minimum() -> None:
    """The fitted W, b minimise mean CE + penalty: the gradient vanishes at the solution."""
    feats, batch = _gaussians(40)
    x, y = feats["features"], batch["label"]
    for penalty in ("frobenius", "squared"):
        model = fit_logistic_regression(x, y, num_outputs=3, C=0.96, penalty=penalty)  # type: ignore[arg-type]
        w = model.weight.detach().clone().requires_grad_(True)
        b = model.bias.detach().clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(x @ w.T + b, y) + probe_penalty(w, 0.96, penalty)  # type: ignore[arg-type]
        loss.backward()
        assert float(w.grad.abs().max()) < 1e-3 and float(b.grad.abs().max()) < 1e-3  # type: ignore[union-attr]


def test_metrics_match_scikit_learn_references() -> None:
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        balanced_accuracy_score,
        classification_report,
        cohen_kappa_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 50)
    logits = rng.normal(size=(50, 3)) + np.eye(3)[labels] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    preds = probs.argmax(1)
    ours = classification_metrics(labels, probs)
    report = classification_report(labels, preds, output_dict=True, zero_division=0)
    assert ours == pytest.approx(
        {
            "acc": accuracy_score(labels, preds),
            "bacc": balanced_accuracy_score(labels, preds),
            "kappa": cohen_kappa_score(labels, preds, weights="quadratic"),
            "weighted_f1": report["weighted avg"]["f1-score"],
            "auroc": roc_auc_score(labels, probs, multi_class="ovo", average="macro"),
            "aupr": average_precision_score(labels, probs, average="macro"),
        }
    )


def test_label_fraction_fits_on_the_stratified_subset() -> None:
    probe = _probe(LinearProbeParams(label_fraction=0.1, max_iter=50))
    probe.update(*_gaussians(60))
    probe.fit()
    assert probe.classifier is not None and probe.cost == pytest.approx(32 * 3 / 100)
    rows = []
    probe.reset()
    probe.update(*_gaussians(60))
    original = probe._fit
    probe._fit = lambda f, y: rows.append(len(y)) or original(f, y)  # type: ignore[method-assign]
    probe.fit()
    assert rows == [180]  # the probe receives the whole split and subsamples itself


def test_rows_are_restored_to_dataset_order_before_subsampling() -> None:
    feats, batch = _gaussians(20)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    a, b = (
        _probe(LinearProbeParams(label_fraction=0.3, max_iter=50)),
        _probe(LinearProbeParams(label_fraction=0.3, max_iter=50)),
    )
    a.update(feats, batch)
    b.update({"features": feats["features"][perm]}, {k: v[perm] for k, v in batch.items()})
    a.fit(), b.fit()
    torch.testing.assert_close(a.classifier.weight, b.classifier.weight)  # type: ignore[union-attr]


def test_compute_before_fit_says_what_to_do() -> None:
    probe = _probe()
    probe.update(*_gaussians(5))
    with pytest.raises(Exception, match="before fit"):
        probe.compute()


def test_knn_probe_votes_among_neighbours() -> None:
    ctx = BuildContext(data=DataFacts(num_classes=3))
    knn = KNNProbe(KNNProbeParams(k=5), ctx)
    result = _run(knn)
    assert set(result) == {k.replace("lin_", "knn_") for k in KEYS}
    assert result["knn_acc"] > 0.95
    uniform = KNNProbe(KNNProbeParams(k=1, weighting="uniform"), ctx)
    uniform.update(*_gaussians(10))
    uniform.fit()
    uniform.reset()
    uniform.update(*_gaussians(10))  # the same points: the nearest neighbour is the point itself
    assert float(uniform.compute()["knn_acc"]) == 1.0
