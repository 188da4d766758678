"""Spec §5.5: the pseudo-label calibrator's rule (ours), on four toy cases, and as an evaluator."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from _tiny import classifier_ref, save_classifier, write_generated
from asklepios_sdk import AsklepiosWarning, BuildContext
from asklepios_sdk.synthesis import GENERATED_EXTRA, GENERATION_MODELS_EXTRA
from asklepios_sdk.testing import host_components
from asklepios_synfer.calibrator import LabelCalibrator, calibrate
from asklepios_synfer.params import LabelCalibratorParams, SyntheticFERParams
from asklepios_synfer.synthetic import SyntheticFER

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


def _guided_folder(tmp_path: Path) -> tuple[Path, Path]:
    """Return a generated folder whose manifest names a guidance classifier, and its weights."""
    weights = save_classifier(tmp_path / "guide.pt", num_classes=3)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    guidance = {"id": f"core.mlp@{digest}", "component": "core.mlp", "source": str(weights)}
    return write_generated(tmp_path / "gen", count=6, classes=3, guidance=guidance), weights


def test_a_member_that_guided_the_generation_is_warned_about(tmp_path) -> None:
    folder, guide = _guided_folder(tmp_path)
    copy = tmp_path / "elsewhere" / "same.pt"
    copy.parent.mkdir()
    shutil.copy(guide, copy)
    other = save_classifier(tmp_path / "other.pt", num_classes=3, seed=5)
    ctx = BuildContext(extras={GENERATED_EXTRA: {"generate": str(folder)}}, stage="quality")
    same_file, same_sha = [guide, other], [other, copy]
    for index, files in enumerate((same_file, same_sha)):
        params = LabelCalibratorParams(models=[classifier_ref(f, 3) for f in files])
        pattern = rf"synfer\.label_calibrator \(stage 'quality'\): models\[{index}\].*'generate'"
        with pytest.warns(AsklepiosWarning, match=pattern):
            LabelCalibrator(params, ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AsklepiosWarning)
        LabelCalibrator(LabelCalibratorParams(models=[classifier_ref(other, 3)]), ctx)
        LabelCalibrator(LabelCalibratorParams(models=[classifier_ref(guide, 3)]), BuildContext())


def test_the_checks_before_the_run_defer_the_warning_to_the_run(tmp_path) -> None:
    # the pre-run checks stay silent so that the build in the run warns once
    folder, guide = _guided_folder(tmp_path)
    extras = {GENERATED_EXTRA: {"generate": str(folder)}, GENERATION_MODELS_EXTRA: {}}
    ctx = BuildContext(extras=extras, stage="quality")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AsklepiosWarning)
        LabelCalibrator(LabelCalibratorParams(models=[classifier_ref(guide, 3)]), ctx)


def test_synthetic_fer_warns_when_its_calibrator_votes_with_the_guidance_classifier(
    tmp_path,
) -> None:
    folder, guide = _guided_folder(tmp_path)
    calibrator = {"models": [classifier_ref(guide, 3)], "min_votes": 1}
    params = SyntheticFERParams(path=str(folder), calibrator=calibrator, val_fraction=0.0)
    ctx = BuildContext(components=host_components, stage="downstream")
    pattern = r"synfer\.synthetic_fer \(stage 'downstream'\): calibrator\.models\[0\]"
    with pytest.warns(AsklepiosWarning, match=pattern):
        SyntheticFER(params, ctx)
