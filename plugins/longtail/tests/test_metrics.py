"""Shot-group evaluator against scikit-learn on the §8.4 fixture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import make_ctx
from asklepios_longtail.metrics import ShotGroupsEvaluator
from asklepios_longtail.params import ShotGroupsEvaluatorParams
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    roc_auc_score,
)

LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])
LOGITS = np.array(
    [
        [3, 1, 0, 0],
        [2, 2.5, 0, 0],
        [1, 0, 0, 0.5],
        [0, 0, 2, 0],
        [0, 3, 0, 0],
        [1, 0, 0, 0],
        [0, 2, 1, 0],
        [0, 0, 2, 0],
        [0, 1, 0, 0],
        [0, 0, 0, 1],
    ],
    dtype=float,
)
GROUPS = {"many": [0], "medium": [1], "few": [2, 3]}


def evaluator(**params) -> ShotGroupsEvaluator:
    ctx = BuildContext(data=DataFacts(num_classes=4))
    return ShotGroupsEvaluator(ShotGroupsEvaluatorParams(head=1, medium=2, **params), ctx)


def run(metric, parts=1):
    for idx in np.array_split(np.arange(10), parts):
        metric.update(
            {"logits": torch.tensor(LOGITS[idx], dtype=torch.float32)},
            {"label": torch.tensor(LABELS[idx])},
        )
    return {k: float(v) for k, v in metric.compute().items()}


def groups_of(per_class):
    g = {name: float(np.mean(per_class[ids])) for name, ids in GROUPS.items()}
    return g, float(np.mean(list(g.values())))


def test_fixture_against_sklearn():
    out = run(evaluator())
    pred = LOGITS.argmax(1)
    recall = np.array([(pred[c == LABELS] == c).mean() for c in range(4)])
    groups, avg = groups_of(recall)
    for c in range(4):
        assert out[f"class_acc_{c}"] == pytest.approx(recall[c])
    for name, v in groups.items():
        assert out[f"acc_{name}"] == pytest.approx(v)
    assert out["acc_group_avg"] == pytest.approx(avg)
    assert out["mean_recall"] == pytest.approx(balanced_accuracy_score(LABELS, pred))
    assert out["top1"] == pytest.approx((pred == LABELS).mean())
    assert out["acc_group_avg"] != pytest.approx(out["mean_recall"])  # unequal group sizes

    auroc = np.array([roc_auc_score(c == LABELS, LOGITS[:, c]) for c in range(4)])
    auprc = np.array([average_precision_score(c == LABELS, LOGITS[:, c]) for c in range(4)])
    f1 = f1_score(LABELS, pred, average=None, labels=range(4), zero_division=0)
    for name, per_class in (("auroc", auroc), ("auprc", auprc), ("f1", f1)):
        groups, avg = groups_of(per_class)
        for c in range(4):
            assert out[f"class_{name}_{c}"] == pytest.approx(per_class[c], abs=1e-6)
        for g, v in groups.items():
            assert out[f"{name}_{g}"] == pytest.approx(v, abs=1e-6)
        assert out[f"{name}_group_avg"] == pytest.approx(avg, abs=1e-6)


def test_probability_auc_differs_from_logit_auc():
    e = np.exp(LOGITS - LOGITS.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    auroc = np.array([roc_auc_score(c == LABELS, probs[:, c]) for c in range(4)])
    out = run(evaluator(auc_score="probs"))
    logit_out = run(evaluator())
    for c in range(4):
        assert out[f"class_auroc_{c}"] == pytest.approx(auroc[c], abs=1e-6)
    assert any(
        out[f"class_auroc_{c}"] != pytest.approx(logit_out[f"class_auroc_{c}"]) for c in range(4)
    )


def test_two_halves_and_merged_ranks_equal_one_pass():
    single = run(evaluator())
    assert run(evaluator(), parts=2) == pytest.approx(single)
    rank0, rank1 = evaluator(), evaluator()
    for metric, idx in ((rank0, slice(0, 5)), (rank1, slice(5, 10))):
        metric.update(
            {"logits": torch.tensor(LOGITS[idx], dtype=torch.float32)},
            {"label": torch.tensor(LABELS[idx])},
        )
    rank0.merge_state(rank1)  # what a two-rank 'cat' sync does to the states
    merged = {k: float(v) for k, v in rank0.compute().items()}
    assert merged == pytest.approx(single)


def test_absent_class_scores_zero_and_count_grouping():
    metric = ShotGroupsEvaluator(
        ShotGroupsEvaluatorParams(grouping="counts"), make_ctx([500, 100, 20, 5])
    )
    assert metric.groups == {"many": [0], "medium": [1, 2], "few": [3]}
    metric.update(
        {"logits": torch.tensor(LOGITS[:7], dtype=torch.float32)},
        {"label": torch.tensor(LABELS[:7])},
    )
    out = metric.compute()
    assert float(out["class_acc_3"]) == 0 and float(out["class_auroc_3"]) == 0
    with pytest.raises(ComponentError, match="grouping 'counts' needs"):
        ShotGroupsEvaluator(
            ShotGroupsEvaluatorParams(grouping="counts"),
            BuildContext(data=DataFacts(num_classes=4)),
        )
