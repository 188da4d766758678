"""``panderm.finetune_metrics`` against a numpy transcription of the repo's definitions (§6.4,
``engine_for_finetuning.evaluate``), on fixed random inputs, plus its properties and edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asklepios_panderm.ftmetrics import FinetuneMetrics, finetune_metrics
from asklepios_panderm.params import FinetuneMetricsParams
from asklepios_sdk import BuildContext, ComponentError, DataFacts


def _auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC: the chance a positive outscores a negative, ties counting half."""
    pos, neg = score[positive], score[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def reference(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """The repo's metric set written out: macro averages over classes in labels or predictions."""
    n, k = probs.shape
    preds = probs.argmax(axis=1)
    present = np.union1d(labels, preds)
    tp = np.array([np.sum((preds == c) & (labels == c)) for c in present])
    fp = np.array([np.sum((preds == c) & (labels != c)) for c in present])
    fn = np.array([np.sum((preds != c) & (labels == c)) for c in present])
    tn = n - tp - fp - fn
    support = tp + fn
    recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
    ranked = np.argsort(-probs, axis=1, kind="stable")
    onehot = np.eye(k, dtype=bool)[labels]
    scored = [c for c in range(k) if 0 < onehot[:, c].sum() < n]
    return {
        "balanced_accuracy": recall[support > 0].mean(),
        "accuracy": np.mean(preds == labels),
        "top3_accuracy": np.mean([labels[i] in ranked[i, :3] for i in range(n)]),
        "top5_accuracy": np.mean([labels[i] in ranked[i, :5] for i in range(n)]),
        "sensitivity": recall.mean(),
        "specificity": np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), 0.0).mean(),
        "auroc": np.mean([_auc(onehot[:, c], probs[:, c]) for c in scored]),
        "weighted_f1": np.sum(f1 * support) / support.sum(),
        "recall_macro": recall.mean(),
        "recall_weighted": np.sum(recall * support) / support.sum(),
    }


def _case(seed: int, n: int = 150, k: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), labels] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return labels, probs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_the_transcription(seed):
    labels, probs = _case(seed)
    got, expected = finetune_metrics(labels, probs), reference(labels, probs)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-12), key


def test_identities_of_the_set():
    labels, probs = _case(3)
    got = finetune_metrics(labels, probs)
    assert got["sensitivity"] == pytest.approx(got["recall_macro"])
    assert got["recall_weighted"] == pytest.approx(got["accuracy"])  # support-weighted recall
    assert got["accuracy"] <= got["top3_accuracy"] <= got["top5_accuracy"] <= 1.0
    perfect = np.eye(7)[labels] * 0.9 + 0.1 / 7
    best = finetune_metrics(labels, perfect)
    assert all(best[key] == pytest.approx(1.0) for key in best)


def test_a_class_predicted_but_never_labelled_counts_zero_sensitivity():
    """The repo's one-vs-rest matrices cover predicted classes too (scikit-learn's default)."""
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    got = finetune_metrics(labels, probs)
    assert got["sensitivity"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert got == pytest.approx(reference(labels, probs))


def test_auroc_averages_the_classes_the_split_holds():
    """The repo's roc_auc_score fails on a class without test samples; here it is left out."""
    labels, probs = _case(4, k=5)
    labels[labels == 4] = 0
    expected = np.mean([_auc(labels == c, probs[:, c]) for c in range(4)])
    assert finetune_metrics(labels, probs)["auroc"] == pytest.approx(expected)
    single = finetune_metrics(np.zeros(6, dtype=np.int64), probs[:6])
    assert math.isnan(single["auroc"])


def test_binary_top_k_is_one():
    labels, probs = _case(5, k=2)
    got = finetune_metrics(labels, probs)
    assert got["top3_accuracy"] == got["top5_accuracy"] == 1.0
    assert got == pytest.approx(reference(labels, probs))


def test_the_evaluator_gathers_batches_and_checks_its_inputs():
    labels, probs = _case(6)
    logits = torch.from_numpy(np.log(probs))
    evaluator = FinetuneMetrics(
        FinetuneMetricsParams(), BuildContext(data=DataFacts(num_classes=7))
    )
    for part in np.array_split(np.arange(len(labels)), 4):
        evaluator.update({"logits": logits[part]}, {"label": torch.from_numpy(labels[part])})
    result = {k: float(v) for k, v in evaluator.compute().items()}
    assert result == pytest.approx(finetune_metrics(labels, probs), abs=1e-12)
    with pytest.raises(ComponentError, match="logits have 3 classes, the evaluator 7"):
        evaluator.update({"logits": torch.zeros(2, 3)}, {"label": torch.zeros(2)})
    with pytest.raises(ComponentError, match=r"needs class logits \[B, K\]"):
        evaluator.update({"features": torch.zeros(2, 3)}, {"label": torch.zeros(2)})
    with pytest.raises(ComponentError, match="number of classes is unknown"):
        FinetuneMetrics(FinetuneMetricsParams(), BuildContext())
