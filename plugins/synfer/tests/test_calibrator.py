"""Spec §5.5: the pseudo-label calibrator's rule (ours), on four toy cases, and as an evaluator."""

from __future__ import annotations

import torch
from asklepios_sdk import BuildContext
from asklepios_synfer.calibrator import LabelCalibrator, calibrate
from asklepios_synfer.params import LabelCalibratorParams

# 3 models × 4 samples × 4 classes; intended labels [0, 0, 0, 3]
PROBS = torch.tensor(
    [
        # s0: agrees (argmax p̄ = 0); s1: confident disagreement toward 2; s2: weak disagreement;
        # s3: weak disagreement (kept soft in soft mode)
        [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.2, 0.45, 0.2, 0.15], [0.1, 0.5, 0.2, 0.2]],
        [
            [0.6, 0.2, 0.1, 0.1],
            [0.05, 0.05, 0.85, 0.05],
            [0.3, 0.2, 0.4, 0.1],
            [0.2, 0.2, 0.5, 0.1],
        ],
        [[0.4, 0.4, 0.1, 0.1], [0.2, 0.1, 0.6, 0.1], [0.1, 0.5, 0.3, 0.1], [0.3, 0.4, 0.1, 0.2]],
    ]
)
INTENDED = torch.tensor([0, 0, 0, 3])


def _rule(intended, probs, tau, min_votes, soft):
    """The rule of spec §2.5, written out per sample in plain Python."""
    out = []
    for n in range(probs.shape[1]):
        members = [probs[m, n].tolist() for m in range(probs.shape[0])]
        mean = [sum(p[k] for p in members) / len(members) for k in range(len(members[0]))]
        top = max(range(len(mean)), key=lambda k: mean[k])
        votes = sum(1 for p in members if max(range(len(p)), key=lambda k: p[k]) == top)
        if top == int(intended[n]):
            out.append((int(intended[n]), True, None))
        elif mean[top] >= tau and votes >= min_votes:
            out.append((top, True, None))
        elif soft:
            out.append((int(intended[n]), True, mean))
        else:
            out.append((-1, False, None))
    return out


def test_the_four_cases_follow_the_rule() -> None:
    hard = calibrate(INTENDED, PROBS, 0.6, 2, soft=False)
    expected = _rule(INTENDED, PROBS, 0.6, 2, False)
    assert [e[0] for e in expected] == [0, 2, -1, -1]  # agree, relabel, drop, drop
    assert hard["label"].tolist() == [0, 2, -1, -1]
    assert hard["kept"].tolist() == [True, True, False, False]
    assert hard["decision"].tolist() == [0, 1, 3, 3]
    mean = PROBS.mean(dim=0)
    assert torch.allclose(hard["confidence"], mean.max(dim=1).values)
    assert hard["soft_label"][1].tolist() == [0, 0, 1, 0] and hard["soft_label"][2].sum() == 0
    soft = calibrate(INTENDED, PROBS, 0.6, 2, soft=True)
    expected_soft = _rule(INTENDED, PROBS, 0.6, 2, True)
    assert soft["label"].tolist() == [e[0] for e in expected_soft] == [0, 2, 0, 3]
    assert soft["kept"].all() and soft["decision"].tolist() == [0, 1, 2, 2]
    assert torch.allclose(soft["soft_label"][2], mean[2]) and torch.allclose(
        soft["soft_label"][3], mean[3]
    )


def test_votes_are_needed_as_well_as_confidence() -> None:
    # s1 is confident (p̄ max 0.72) with 3 votes; asking for 4 votes drops it
    assert calibrate(INTENDED, PROBS, 0.6, 4, soft=False)["label"].tolist() == [0, -1, -1, -1]
    # a low threshold relabels s2 to argmax p̄ = 1 (2 votes)
    assert calibrate(INTENDED, PROBS, 0.3, 2, soft=False)["label"][2] == 1


def test_the_evaluator_reports_the_shares() -> None:
    evaluator = LabelCalibrator(LabelCalibratorParams(tau_conf=0.6, min_votes=2), BuildContext())
    evaluator.update({"member_probs": PROBS[:, :2].transpose(0, 1)}, {"label": INTENDED[:2]})
    evaluator.update({"member_probs": PROBS[:, 2:].transpose(0, 1)}, {"label": INTENDED[2:]})
    result = evaluator.compute()
    assert result["agree"] == 0.25 and result["relabelled"] == 0.25
    assert result["dropped"] == 0.5 and result["kept"] == 0.5 and result["soft"] == 0.0
