"""Spec §5.6: the evaluator refuses the guidance classifier; FER accuracy and FID."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from _tiny import classifier_ref, save_classifier, write_generated
from asklepios_sdk import AsklepiosWarning, BuildContext, ComponentError
from asklepios_sdk.testing import host_components
from asklepios_synfer.params import ClassifierRef, GenerationQualityParams
from asklepios_synfer.quality import GenerationQuality
from scipy import linalg


def _ctx() -> BuildContext:
    return BuildContext(components=host_components)


def _guidance(path) -> dict:
    ref = ClassifierRef(**classifier_ref(path, 4))
    from asklepios_synfer.classifiers import build_classifier, reference_key

    component, source = reference_key(ref)
    return {
        "id": build_classifier(ref, _ctx(), "t").model_id,
        "component": component,
        "source": source,
    }


def test_the_guidance_classifier_cannot_score_its_own_images(tmp_path) -> None:
    weights = save_classifier(tmp_path / "guide.pt", num_classes=4)
    folder = write_generated(tmp_path / "gen", classes=4, guidance=_guidance(weights))
    same = GenerationQualityParams(classifier=classifier_ref(weights, 4), path=str(folder))
    with pytest.raises(ComponentError, match=r"configuration error.*guided the generation"):
        GenerationQuality(same, _ctx())
    copy = shutil.copy(weights, tmp_path / "renamed.pt")  # the same weights under another name
    renamed = GenerationQualityParams(classifier=classifier_ref(copy, 4), path=str(folder))
    with pytest.raises(ComponentError, match="configuration error"):
        GenerationQuality(renamed, _ctx())
    other = save_classifier(tmp_path / "held_out.pt", num_classes=4, seed=1)
    fine = GenerationQualityParams(classifier=classifier_ref(other, 4), path=str(folder))
    assert GenerationQuality(fine, _ctx()).classifier is not None


def test_without_the_generated_set_it_warns_that_it_cannot_check(tmp_path) -> None:
    weights = save_classifier(tmp_path / "c.pt", num_classes=4)
    with pytest.warns(AsklepiosWarning, match="cannot check"):
        GenerationQuality(GenerationQualityParams(classifier=classifier_ref(weights, 4)), _ctx())


def _frechet(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from two feature sets, written from the formula (scipy's sqrtm)."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_accuracy_and_fid_match_references_and_two_halves_merge(tmp_path) -> None:
    weights = save_classifier(tmp_path / "c.pt", num_classes=4, hidden=4)
    folder = write_generated(tmp_path / "gen", count=12, classes=4)
    ref = classifier_ref(weights, 4, params={"hidden": [4]})
    params = GenerationQualityParams(
        classifier=ref,
        path=str(folder),
        feature_extractor=ref,
        reference={"type": "core.digits", "image_size": 16, "channels": 3, "test_per_class": 2},
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(12, 3, 16, 16, generator=gen)
    labels = torch.randint(0, 4, (12,), generator=gen)
    whole = GenerationQuality(params, _ctx())
    whole.update({}, {"image": images, "label": labels})
    result = whole.compute()
    classifier = whole.classifier
    predicted = classifier(images).argmax(1)
    assert result["fer_accuracy"] == pytest.approx(float((predicted == labels).float().mean()))
    real_images = torch.stack([whole.reference[i]["image"] for i in range(len(whole.reference))])
    with torch.no_grad():
        real = classifier.features(real_images).double().numpy()
        fake = classifier.features(images).double().numpy()
    assert result["fid"] == pytest.approx(_frechet(real, fake), rel=1e-3, abs=1e-4)
    # what the sum reduction of 2 ranks does: each half's states added
    halves = [GenerationQuality(params, _ctx()) for _ in range(2)]
    for rank, half in enumerate(halves):
        half.ctx = half.ctx.replace(rank=rank, world_size=2)
        half.update({}, {"image": images[rank::2], "label": labels[rank::2]})
    merged = halves[0]
    merged.correct += halves[1].correct
    merged.total += halves[1].total
    for name in merged.fid._defaults:
        setattr(merged.fid, name, getattr(merged.fid, name) + getattr(halves[1].fid, name))
    again = merged.compute()
    assert again["fer_accuracy"] == pytest.approx(result["fer_accuracy"])
    assert again["fid"] == pytest.approx(result["fid"], rel=1e-6)
