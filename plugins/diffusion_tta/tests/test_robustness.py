"""corruption_robustness against scikit-learn on random predictions, CE and its matrices."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from asklepios_diffusion_tta.params import CorruptionRobustnessParams
from asklepios_diffusion_tta.robustness import ALL_CORRUPTIONS, CorruptionRobustness
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from sklearn.metrics import accuracy_score, balanced_accuracy_score


def _ctx(tmp_path=None, k: int = 4) -> BuildContext:
    return BuildContext(
        data=DataFacts(num_classes=k), output_dir=str(tmp_path) if tmp_path else None
    )


def _data(n: int = 600, k: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=gen)
    corruption = torch.randint(0, 3, (n,), generator=gen)
    severity = torch.randint(1, 6, (n,), generator=gen)
    source = torch.randn(n, k, generator=gen)
    source[torch.arange(n), labels] += 1.0
    adapted = torch.randn(n, k, generator=gen)
    return labels, corruption, severity, source, adapted


def test_matches_sklearn_per_cell_and_means(tmp_path) -> None:
    labels, corruption, severity, source, adapted = _data()
    metric = CorruptionRobustness(CorruptionRobustnessParams(), _ctx(tmp_path))
    for chunk in torch.arange(600).split(128):
        outputs = {
            "logits": source[chunk] + adapted[chunk],
            "logits_source": source[chunk],
            "logits_adapted": adapted[chunk],
        }
        batch = {
            "label": labels[chunk],
            "corruption": corruption[chunk],
            "severity": severity[chunk],
        }
        metric.update(outputs, batch)
    result = metric.compute()
    predictions = {"model": source + adapted, "source": source, "adapted": adapted}
    for predictor, logits in predictions.items():
        pred = logits.argmax(1).numpy()
        cells = []
        for c in range(3):
            for s in range(1, 6):
                mask = ((corruption == c) & (severity == s)).numpy()
                name = ALL_CORRUPTIONS[c]
                acc = accuracy_score(labels.numpy()[mask], pred[mask])
                bacc = balanced_accuracy_score(labels.numpy()[mask], pred[mask])
                assert result[f"{predictor}/acc/{name}/s{s}"] == pytest.approx(acc)
                assert result[f"{predictor}/bacc/{name}/s{s}"] == pytest.approx(bacc)
                cells.append((s, acc))
        for s in range(1, 6):
            expected = np.mean([a for sev, a in cells if sev == s])
            assert result[f"{predictor}/acc/mean/s{s}"] == pytest.approx(expected)
        assert result[f"{predictor}/acc/mean"] == pytest.approx(np.mean([a for _, a in cells]))
    matrix = metric.artifacts()["source/acc_matrix"]  # the run prints and draws it
    assert matrix["rows"] == list(ALL_CORRUPTIONS[:3])
    assert matrix["columns"] == ["s1", "s2", "s3", "s4", "s5"]
    assert matrix["values"][1][4] == result[f"source/acc/{ALL_CORRUPTIONS[1]}/s5"]
    assert set(metric.artifacts()) == {f"{p}/acc_matrix" for p in predictions}
    assert metric.is_higher_better("source/acc/mean") and not metric.is_higher_better("model/mce")


def test_corruption_error_against_reference(tmp_path) -> None:
    labels, corruption, severity, source, _ = _data(seed=1)
    reference = {"gaussian_noise": [0.5, 0.6, 0.7, 0.8, 0.9]}
    path = tmp_path / "ref.json"
    path.write_text(json.dumps({"shot_noise": [0.4, 0.4, 0.5, 0.5, 0.6]}))
    params = CorruptionRobustnessParams(
        reference_errors=reference, reference_file=str(path), plot=False
    )
    metric = CorruptionRobustness(params, _ctx())
    metric.update(
        {"logits": source}, {"label": labels, "corruption": corruption, "severity": severity}
    )
    result = metric.compute()
    errors_g = [1 - result[f"model/acc/gaussian_noise/s{s}"] for s in range(1, 6)]
    errors_s = [1 - result[f"model/acc/shot_noise/s{s}"] for s in range(1, 6)]
    ce_g = sum(errors_g) / sum(reference["gaussian_noise"])
    ce_s = sum(errors_s) / 2.4
    assert result["model/ce/gaussian_noise"] == pytest.approx(ce_g)
    assert result["model/mce"] == pytest.approx((ce_g + ce_s) / 2)
    assert "source/acc/mean" not in result


def test_clean_samples_and_errors() -> None:
    metric = CorruptionRobustness(CorruptionRobustnessParams(plot=False), _ctx(k=2))
    metric.update(
        {"logits": torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])},
        {"label": torch.tensor([0, 0, 1])},
    )
    result = metric.compute()
    assert result["model/acc/clean"] == pytest.approx(1 / 3)
    assert result["model/bacc/clean"] == pytest.approx(0.25)
    with pytest.raises(ComponentError, match="severity"):
        metric.update(
            {"logits": torch.zeros(1, 2)},
            {
                "label": torch.tensor([0]),
                "corruption": torch.tensor([0]),
                "severity": torch.tensor([7]),
            },
        )
    with pytest.raises(ComponentError, match="5 errors"):
        CorruptionRobustnessParams(reference_errors={"fog": [0.1]})
        CorruptionRobustness(CorruptionRobustnessParams(reference_errors={"fog": [0.1]}), _ctx())
    with pytest.raises(ComponentError, match="classification"):
        CorruptionRobustness(CorruptionRobustnessParams(), BuildContext())
