"""Acceptance check 4: tIoU and ActivityNet mAP, against a straightforward implementation.

``reference_map`` below is written from the specification (section 3.1) as plain loops over
classes, predictions and ground truth, independently of the plugin's vectorised code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_ophnet._tal import _class_ap, detection_ap, segment_tiou
from asklepios_ophnet.metrics import TALMapEvaluator
from asklepios_ophnet.params import TALMapEvaluatorParams
from asklepios_sdk import BuildContext
from asklepios_sdk.sequences import SequenceCollate

TIOUS = [0.3, 0.4, 0.5, 0.6, 0.7]


def reference_tiou(p, g):
    inter = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
    return inter / ((p[1] - p[0]) + (g[1] - g[0]) - inter)


def reference_ap_curve(precision, recall):
    mprec = [0.0, *precision, 0.0]
    mrec = [0.0, *recall, 1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum(
        (mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1]
    )


def reference_map(predictions, ground_truth, tious=TIOUS, tol=1e-3, faithful=False):
    """``predictions``: (video, start, end, score, label); ``ground_truth``: (video, s, e, label).

    Returns (AP[tiou][class] dict, classes).
    """
    kept = []
    for video, s, e, label in ground_truth:
        repeat = any(
            v == video and lab == label and abs(s - ks) <= tol and abs(e - ke) <= tol
            for v, ks, ke, lab in kept
        )
        if not repeat:
            kept.append((video, s, e, label))
    kept = [g for g in kept if g[1] != g[2]]
    classes = sorted({g[3] for g in kept})
    index = {c: i for i, c in enumerate(classes)}
    gt = [(v, s, e, index[lab]) for v, s, e, lab in kept]
    preds = []
    for video, s, e, score, label in predictions:
        if label in index:
            preds.append((video, s, e, score, index[label]))
        elif faithful:
            preds.append((video, s, e, score, label))
    ap = {}
    for c in range(len(classes)):
        mine = [p for p in preds if p[4] == c]
        mine.sort(key=lambda p: -p[3])  # stable: ties keep input order
        truth = [g for g in gt if g[3] == c]
        for tiou in tious:
            if not mine:
                ap[tiou, c] = 0.0
                continue
            locked = [False] * len(truth)
            tp, fp = [], []
            for video, s, e, _, _ in mine:
                candidates = [j for j, g in enumerate(truth) if g[0] == video]
                overlaps = {j: reference_tiou((s, e), truth[j][1:3]) for j in candidates}
                hit = False
                for j in sorted(candidates, key=lambda j: -overlaps[j]):  # stable on ties
                    if overlaps[j] < tiou:
                        break
                    if locked[j]:
                        continue
                    locked[j] = hit = True
                    break
                tp.append(1.0 if hit else 0.0)
                fp.append(0.0 if hit else 1.0)
            cum_tp, cum_fp = np.cumsum(tp), np.cumsum(fp)
            precision = cum_tp / (cum_tp + cum_fp)
            recall = cum_tp / len(truth)
            ap[tiou, c] = reference_ap_curve(list(precision), list(recall))
    return ap, classes


def reference_scores(predictions, ground_truth, **kwargs):
    ap, classes = reference_map(predictions, ground_truth, **kwargs)
    tious = kwargs.get("tious", TIOUS)
    per = [np.mean([ap[t, c] for c in range(len(classes))]) * 100 for t in tious]
    return {**{f"mAP@{t:g}": v for t, v in zip(tious, per, strict=True)}, "average": np.mean(per)}


def plugin_scores(predictions, ground_truth, **params):
    """Run the evaluator on batches of 3 videos built with the sequence collate."""
    evaluator = TALMapEvaluator(TALMapEvaluatorParams(units="steps", **params), BuildContext())
    videos = sorted({p[0] for p in predictions} | {g[0] for g in ground_truth})
    samples = []
    for position, video in enumerate(videos):
        truth = [g for g in ground_truth if g[0] == video]
        mine = [p for p in predictions if p[0] == video]
        samples.append(
            {
                "features": torch.zeros(4, 1),
                "segments": torch.tensor([g[1:3] for g in truth], dtype=torch.float64).reshape(
                    -1, 2
                ),
                "segment_labels": torch.tensor([g[3] for g in truth], dtype=torch.int64),
                "pred_segments": torch.tensor([p[1:3] for p in mine], dtype=torch.float64).reshape(
                    -1, 2
                ),
                "pred_scores": torch.tensor([p[3] for p in mine], dtype=torch.float64),
                "pred_labels": torch.tensor([p[4] for p in mine], dtype=torch.int64),
                "index": position,
            }
        )
    collate = SequenceCollate(segment_keys=("segments", "segment_labels"))
    pred_collate = SequenceCollate(
        step_keys=("pred_segments", "pred_scores", "pred_labels"), segment_keys=()
    )
    for start in range(0, len(samples), 3):
        chunk = samples[start : start + 3]
        batch = collate(
            [{k: s[k] for k in ("features", "segments", "segment_labels", "index")} for s in chunk]
        )
        preds = pred_collate(
            [{k: s[k] for k in ("pred_segments", "pred_scores", "pred_labels")} for s in chunk]
        )
        outputs = {
            "segments": preds["pred_segments"],
            "scores": preds["pred_scores"],
            "labels": preds["pred_labels"],
            "segment_mask": preds["mask"],
        }
        evaluator.update(outputs, batch)
    return {k: float(v) for k, v in evaluator.compute().items()}, evaluator


def test_tiou_of_two_half_overlapping_segments():
    expected = reference_tiou((0, 10), (5, 15))
    assert expected == pytest.approx(5 / 15)
    table = segment_tiou(np.array([[0, 10], [20, 30]])[:, None], np.array([[5, 15]])[None])
    assert table.shape == (2, 1)
    assert table[0, 0] == pytest.approx(expected)
    assert table[1, 0] == 0.0


GT = [("v", 0.0, 10.0, 0)]


def test_an_exact_prediction_scores_100_everywhere():
    got, _ = plugin_scores([("v", 0.0, 10.0, 0.9, 0)], GT)
    assert got == pytest.approx(reference_scores([("v", 0.0, 10.0, 0.9, 0)], GT))
    assert got == pytest.approx({**{f"mAP@{t:g}": 100.0 for t in TIOUS}, "average": 100.0})


def test_a_third_overlap_counts_only_at_0_3():
    preds = [("v", 5.0, 15.0, 0.9, 0)]
    got, evaluator = plugin_scores(preds, GT)
    ap, _ = reference_map(preds, GT)
    per_tiou = [ap[t, 0] for t in TIOUS]
    assert per_tiou == [1.0, 0.0, 0.0, 0.0, 0.0]  # tIoU 1/3 passes 0.3 only
    assert got["average"] == pytest.approx(np.mean(per_tiou) * 100)
    table = evaluator.artifacts()["per_class_ap"]
    assert table["rows"] == ["0"] and table["values"] == [[100.0, 0.0, 0.0, 0.0, 0.0]]


def test_a_duplicate_is_a_false_positive_that_interpolation_forgives():
    preds = [("v", 0.0, 10.0, 0.9, 0), ("v", 0.0, 10.0, 0.8, 0)]
    assert reference_ap_curve([1.0, 0.5], [1.0, 1.0]) == 1.0  # TP then FP
    # one hit, at threshold 0, ranked first in class 0 of one ground truth
    assert _class_ap(np.array([0]), np.array([0]), np.array([1]), np.array([1]), 1)[0, 0] == 1.0
    got, _ = plugin_scores(preds, GT)
    assert got["average"] == pytest.approx(100.0)
    # ...but a false positive ranked first costs precision
    worse = [("v", 20.0, 30.0, 0.95, 0), ("v", 0.0, 10.0, 0.9, 0)]
    assert plugin_scores(worse, GT)[0]["average"] == pytest.approx(50.0)
    assert reference_scores(worse, GT)["average"] == pytest.approx(50.0)


def test_a_class_without_predictions_counts_zero_and_absent_classes_are_ignored():
    truth = [("v", 0.0, 10.0, 0), ("w", 2.0, 4.0, 1)]
    preds = [("v", 0.0, 10.0, 0.9, 0)]
    assert plugin_scores(preds, truth)[0]["average"] == pytest.approx(50.0)
    extra = [*preds, ("w", 2.0, 4.0, 0.99, 7)]  # class 7 is not in the ground truth
    assert plugin_scores(extra, truth)[0] == pytest.approx(plugin_scores(preds, truth)[0])


def test_faithful_keeps_unknown_labels_un_remapped():
    truth = [("v", 0.0, 10.0, 0), ("w", 2.0, 4.0, 2)]  # classes {0, 2} -> indices {0, 1}
    preds = [("v", 0.0, 10.0, 0.9, 0), ("w", 2.0, 4.0, 0.8, 1)]  # label 1 is not a GT class
    robust = plugin_scores(preds, truth)[0]
    faithful = plugin_scores(preds, truth, faithful=True)[0]
    assert robust["average"] == pytest.approx(50.0)  # label 1 dropped: class 2 has no prediction
    assert faithful["average"] == pytest.approx(100.0)  # raw 1 scored as index 1 = class 2
    assert faithful == pytest.approx(reference_scores(preds, truth, faithful=True))


def test_ground_truth_repeats_and_zero_lengths_are_dropped():
    truth = [
        ("v", 0.0, 10.0, 0),
        ("v", 0.0005, 10.0008, 0),  # repeats the first within 1e-3
        ("v", 0.0005, 10.0008, 1),  # other label: kept
        ("v", 4.0, 4.0, 0),  # zero length
    ]
    preds = [("v", 0.0, 10.0, 0.9, 0), ("v", 0.0, 10.0, 0.5, 1)]
    got = plugin_scores(preds, truth)[0]
    assert got == pytest.approx(reference_scores(preds, truth))
    assert got["average"] == pytest.approx(100.0)


def _random_case(seed, videos=25, classes=6, faithful_labels=False):
    rng = np.random.default_rng(seed)
    truth, preds = [], []
    for v in range(videos):
        name = f"v{v:03d}"
        for _ in range(rng.integers(0, 6)):
            s = float(rng.uniform(0, 90))
            truth.append((name, s, s + float(rng.uniform(0.5, 20)), int(rng.integers(0, classes))))
        for _ in range(rng.integers(0, 25)):
            s = float(rng.uniform(0, 90))
            label = int(rng.integers(0, classes + (2 if faithful_labels else 0)))
            preds.append((name, s, s + float(rng.uniform(0.5, 20)), float(rng.random()), label))
    # near-copies of the truth so that every threshold sees hits
    for name, s, e, label in truth:
        if rng.random() < 0.6:
            preds.append(
                (name, s + rng.normal(0, 1), e + rng.normal(0, 1), float(rng.random()), label)
            )
    return preds, truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_predictions_equal_the_straightforward_implementation(seed):
    preds, truth = _random_case(seed)
    got = plugin_scores(preds, truth)[0]
    expected = reference_scores(preds, truth)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key
    assert 5 < got["average"] < 95  # neither trivial nor empty


def test_random_predictions_faithful_mode_equals_the_reference():
    preds, truth = _random_case(7, faithful_labels=True)
    got = plugin_scores(preds, truth, faithful=True)[0]
    for key, value in reference_scores(preds, truth, faithful=True).items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def _functional(preds, truth):
    """Run ``detection_ap`` on the tuples the reference takes (video names become ids)."""
    videos = {v: i for i, v in enumerate(sorted({g[0] for g in truth} | {p[0] for p in preds}))}
    return detection_ap(
        np.array([videos[p[0]] for p in preds], dtype=np.int64),
        np.array([p[1:3] for p in preds]).reshape(-1, 2),
        np.array([p[3] for p in preds]),
        np.array([p[4] for p in preds], dtype=np.int64),
        np.array([videos[g[0]] for g in truth]),
        np.array([g[1:3] for g in truth]),
        np.array([g[3] for g in truth]),
        np.array(TIOUS),
    )


def test_the_functional_form_returns_ap_per_threshold_and_class():
    preds, truth = _random_case(3)
    ap, classes = _functional(preds, truth)
    ref, ref_classes = reference_map(preds, truth)
    assert classes.tolist() == ref_classes
    assert ap == pytest.approx(np.array([[ref[t, c] for c in range(len(classes))] for t in TIOUS]))


def test_seconds_are_step_positions_mapped_through_the_batch_grid():
    """tIoU is scale-invariant, but repeats within 1e-3 s are found in seconds only."""
    evaluator = TALMapEvaluator(TALMapEvaluatorParams(), BuildContext())
    batch = {
        "segments": torch.tensor([[[0.0, 10.0], [0.001, 10.0]]]),
        "segment_labels": torch.tensor([[0, 0]]),
        "segment_mask": torch.tensor([[True, True]]),
        "step_seconds": torch.tensor([0.64], dtype=torch.float64),
        "time_offset": torch.tensor([0.32], dtype=torch.float64),
        "index": torch.tensor([0]),
    }
    outputs = {
        "segments": torch.tensor([[[0.0, 10.0]]]),
        "scores": torch.tensor([[0.9]]),
        "labels": torch.tensor([[0]]),
        "segment_mask": torch.tensor([[True]]),
    }
    evaluator.update(outputs, batch)
    # 0.001 steps = 0.00064 s: a repeat in seconds, so one GT and a perfect score
    assert float(evaluator.compute()["average"]) == pytest.approx(100.0)
    steps = TALMapEvaluator(
        TALMapEvaluatorParams(units="steps", duplicate_tol=1e-4), BuildContext()
    )
    steps.update(outputs, batch)
    assert float(steps.compute()["average"]) == pytest.approx(50.0)  # two GT, one found


def test_a_chain_of_near_repeats_follows_the_sequential_rule():
    """B repeats A, C repeats B but not A: B is dropped, so C stays (it repeats no kept one)."""
    truth = [("v", 0.0, 10.0, 0), ("v", 0.0009, 10.0009, 0), ("v", 0.0018, 10.0018, 0)]
    preds = [("v", 0.0, 10.0, 0.9, 0), ("v", 0.0018, 10.0018, 0.8, 0)]
    got = plugin_scores(preds, truth)[0]
    assert got == pytest.approx(reference_scores(preds, truth))
    assert got["average"] == pytest.approx(100.0)  # two kept ground truth, both found


def test_ap_from_true_positives_alone_equals_one_curve_per_class():
    """AP needs only the hits' ranks: the result equals the dense curve of each class."""
    rng = np.random.default_rng(5)
    labels = np.sort(rng.choice([0, 1, 3, 4], size=60))  # class 2 has no prediction
    hits = rng.random((2, 60)) < 0.4
    positives = np.array([30, 20, 5, 25, 12])
    rank = np.arange(60) - np.searchsorted(labels, labels) + 1  # 1-based within the class
    step, position = np.nonzero(hits)
    ap = _class_ap(step, labels[position], rank[position], positives, steps=2)
    for c in range(5):
        for t in range(2):
            mine = hits[t, labels == c].astype(float)
            if not mine.any():
                assert ap[t, c] == 0.0
                continue
            cum_tp = np.cumsum(mine)
            precision = cum_tp / np.arange(1, len(mine) + 1)
            expected = reference_ap_curve(list(precision), list(cum_tp / positives[c]))
            assert ap[t, c] == pytest.approx(expected, abs=1e-12)


def test_large_random_case_with_tied_scores_and_unsorted_thresholds():
    """Crowded groups (several ground truth of a class per video), equal scores, and tIoU
    thresholds given out of order follow the reference."""
    rng = np.random.default_rng(11)
    truth, preds = [], []
    for v in range(40):
        name = f"v{v:03d}"
        for _ in range(rng.integers(3, 12)):
            s = float(rng.uniform(0, 60))
            truth.append((name, s, s + float(rng.uniform(1, 15)), int(rng.integers(0, 3))))
        for _, s, e, label in truth[-3:]:
            for _ in range(rng.integers(1, 6)):
                preds.append((name, s + rng.normal(0, 1.5), e + rng.normal(0, 1.5), 0, label))
    preds = [(v, s, e, float(rng.integers(0, 8)) / 8, lab) for v, s, e, _, lab in preds]
    tious = [0.7, 0.3, 0.5, 0.1, 0.95]
    got = plugin_scores(preds, truth, tious=tious)[0]
    for key, value in reference_scores(preds, truth, tious=tious).items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def _crowded_case(rng):
    """Few videos and classes, so groups hold several ground truth that predictions share;
    near-repeats and zero lengths in the ground truth; scores from a few values (ties)."""
    classes = int(rng.integers(1, 5))
    truth, preds = [], []
    for v in range(int(rng.integers(1, 6))):
        name = f"v{v}"
        for _ in range(rng.integers(0, 9)):
            s = float(rng.uniform(0, 30))
            e = s if rng.random() < 0.05 else s + float(rng.uniform(0.5, 12))
            truth.append((name, s, e, int(rng.integers(0, classes))))
            if rng.random() < 0.15:  # a repeat within the tolerance
                truth.append((name, s + 4e-4, e - 4e-4, truth[-1][3]))
        mine = [g for g in truth if g[0] == name]
        for _ in range(rng.integers(0, 30)):
            if mine and rng.random() < 0.7:
                _, s, e, label = mine[int(rng.integers(0, len(mine)))]
                s, e = s + rng.normal(0, 2), e + rng.normal(0, 2)
            else:
                s = float(rng.uniform(0, 30))
                e, label = s + float(rng.uniform(0.5, 12)), int(rng.integers(0, classes))
            if e > s:
                preds.append((name, float(s), float(e), float(rng.integers(0, 6)) / 5, label))
    return preds, truth


@pytest.mark.parametrize("seed", range(40))
def test_crowded_random_cases_equal_the_straightforward_implementation(seed):
    rng = np.random.default_rng(100 + seed)
    preds, truth = _crowded_case(rng)
    if not truth:
        return
    ap, classes = _functional(preds, truth)
    ref, ref_classes = reference_map(preds, truth)
    assert classes.tolist() == ref_classes
    expected = np.array([[ref[t, c] for c in range(len(ref_classes))] for t in TIOUS])
    np.testing.assert_allclose(ap, expected.reshape(ap.shape), rtol=0, atol=1e-12)


def test_half_precision_outputs_keep_their_class_ids():
    """Under AMP a model may return float16 segments and scores; class 2049 must stay 2049."""
    evaluator = TALMapEvaluator(TALMapEvaluatorParams(units="steps"), BuildContext())
    batch = {
        "segments": torch.tensor([[[0.0, 10.0]]]),
        "segment_labels": torch.tensor([[2049]]),
        "segment_mask": torch.tensor([[True]]),
        "index": torch.tensor([0]),
    }
    outputs = {
        "segments": torch.tensor([[[0.0, 10.0]]], dtype=torch.float16),
        "scores": torch.tensor([[0.9]], dtype=torch.float16),
        "labels": torch.tensor([[2049]]),
        "segment_mask": torch.tensor([[True]]),
    }
    evaluator.update(outputs, batch)
    assert float(evaluator.compute()["average"]) == pytest.approx(100.0)
