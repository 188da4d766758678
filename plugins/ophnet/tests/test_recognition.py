"""Acceptance check 6: the frame-level phase-recognition evaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_ophnet.metrics import PhaseRecognitionEvaluator, macro_scores
from asklepios_ophnet.params import PhaseRecognitionEvaluatorParams
from asklepios_sdk import BuildContext, DataFacts
from asklepios_sdk.sequences import IGNORE_INDEX, SequenceCollate

# video A: 4 frames, 3 correct; video B: 2 frames, 1 correct; labels 0..3 (3 never occurs)
TRUTH = {"A": [0, 0, 1, 1], "B": [2, 0]}
PRED = {"A": [0, 0, 1, 2], "B": [2, 1]}


def _logits(labels, classes=4):
    return torch.nn.functional.one_hot(torch.tensor(labels), classes).float() * 5


def _evaluate(evaluator, videos, truth, pred):
    collate = SequenceCollate()
    batch = collate(
        [
            {
                "features": torch.zeros(len(truth[v]), 2),
                "frame_labels": torch.tensor(truth[v]),
                "index": i,
            }
            for i, v in enumerate(videos)
        ]
    )
    by_step = SequenceCollate(step_keys=("logits",), segment_keys=())
    logits = by_step([{"logits": _logits(pred[v])} for v in videos])["logits"]
    evaluator.update({"logits": logits}, batch)
    return {k: float(v) for k, v in evaluator.compute().items()}


def _independent(truth, pred, labels):
    accuracy = np.mean([np.mean(np.equal(truth[v], pred[v])) for v in truth])
    t = np.concatenate([truth[v] for v in truth])
    p = np.concatenate([pred[v] for v in truth])
    f1s, precisions, recalls = [], [], []
    for k in labels:
        tp = np.sum((t == k) & (p == k))
        precisions.append(tp / np.sum(p == k) if np.sum(p == k) else 0.0)
        recalls.append(tp / np.sum(t == k) if np.sum(t == k) else 0.0)
        f1s.append(
            2 * tp / (np.sum(p == k) + np.sum(t == k)) if np.sum(p == k) + np.sum(t == k) else 0.0
        )
    return accuracy, np.mean(precisions), np.mean(recalls), np.mean(f1s)


def test_video_accuracy_is_the_mean_of_per_video_accuracies():
    evaluator = PhaseRecognitionEvaluator(
        PhaseRecognitionEvaluatorParams(num_classes=4), BuildContext()
    )
    got = _evaluate(evaluator, ["A", "B"], TRUTH, PRED)
    accuracy, precision, recall, f1 = _independent(TRUTH, PRED, range(4))
    assert accuracy == pytest.approx((3 / 4 + 1 / 2) / 2)  # not the pooled 4/6
    assert got["video_accuracy"] == pytest.approx(accuracy)
    assert got["macro_precision"] == pytest.approx(precision)
    assert got["macro_recall"] == pytest.approx(recall)
    assert got["macro_f1"] == pytest.approx(f1)
    assert got["rank_score"] == pytest.approx((accuracy + f1) / 2)


def test_macro_scores_match_scikit_learn_with_a_fixed_label_list():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    truth, pred = rng.integers(0, 6, 200), rng.integers(0, 7, 200)  # 6 never true; 7, 8 absent
    labels = np.arange(9)
    expected = metrics.precision_recall_fscore_support(
        truth, pred, labels=labels, average="macro", zero_division=0
    )[:3]
    assert macro_scores(truth, pred, labels) == pytest.approx(expected)
    short = np.array([0, 2, 4])  # predictions outside the list are misses of the true class
    expected = metrics.precision_recall_fscore_support(
        truth, pred, labels=short, average="macro", zero_division=0
    )[:3]
    assert macro_scores(truth, pred, short) == pytest.approx(expected)


def test_padding_and_unlabelled_frames_are_left_out():
    truth = {"A": [0, IGNORE_INDEX, 1, 1], "B": [2, 0, 0, 0, 0, 0]}
    pred = {"A": [0, 3, 1, 2], "B": [2, 1, 0, 0, 0, 0]}
    evaluator = PhaseRecognitionEvaluator(
        PhaseRecognitionEvaluatorParams(labels=[0, 1, 2, 3]), BuildContext()
    )
    got = _evaluate(evaluator, ["A", "B"], truth, pred)
    clean_truth = {"A": [0, 1, 1], "B": truth["B"]}
    clean_pred = {"A": [0, 1, 2], "B": pred["B"]}
    accuracy, _, _, f1 = _independent(clean_truth, clean_pred, range(4))
    assert got["video_accuracy"] == pytest.approx(accuracy)
    assert got["macro_f1"] == pytest.approx(f1)


def test_the_label_list_defaults_to_the_data_classes():
    ctx = BuildContext(data=DataFacts(num_classes=5))
    evaluator = PhaseRecognitionEvaluator(PhaseRecognitionEvaluatorParams(), ctx)
    assert evaluator.labels.tolist() == [0, 1, 2, 3, 4]
