"""Self-ensemble fusion rules against numpy and the spec's hand-made cases (§6.4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_diffusion_tta.params import SelfEnsembleParams
from asklepios_diffusion_tta.self_ensemble import (
    FUSION_MODES,
    IMAGE_FUSE_MODES,
    PROBABILITY_MODES,
    SelfEnsemble,
    fuse_probabilities,
    fusion_weights,
)
from asklepios_sdk import BuildContext, ComponentError
from torch import nn


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _entropy(p: np.ndarray, double: bool) -> np.ndarray:
    q = _softmax(p) if double else p
    return -(q * np.log(q)).sum(axis=1)


def _reference(p_o: np.ndarray, p_a: np.ndarray, mode: str, double: bool) -> np.ndarray:
    if mode == "sum":
        return p_o + p_a
    if mode == "confidence_sum":
        return p_o * p_o.max(1, keepdims=True) + p_a * p_a.max(1, keepdims=True)
    if mode == "entropy_sum":
        return p_o * _entropy(p_a, double)[:, None] + p_a * _entropy(p_o, double)[:, None]
    out = []
    for i in range(len(p_o)):
        if mode == "confidence":
            take = p_o[i].max() <= p_a[i].max()
        elif mode == "entropy":
            take = _entropy(p_o[i : i + 1], double)[0] >= _entropy(p_a[i : i + 1], double)[0]
        else:
            take = np.var(p_o[i]) <= np.var(p_a[i])
        out.append(p_a[i] if take else p_o[i])
    return np.stack(out)


def _reference_weights(p_o: np.ndarray, p_a: np.ndarray, mode: str, double: bool) -> np.ndarray:
    if mode == "confidence_fuse":
        scores = np.stack([p_o.max(1), p_a.max(1)], 1)
    elif mode == "entropy_fuse":
        scores = np.stack([_entropy(p_a, double), _entropy(p_o, double)], 1)
    else:
        scores = np.stack([p_o.var(1), p_a.var(1)], 1)
    return _softmax(scores)


@pytest.fixture
def probs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return _softmax(rng.normal(0, 2, (16, 5))), _softmax(rng.normal(0, 2, (16, 5)))


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("mode", PROBABILITY_MODES)
def test_probability_modes_match_numpy(probs, mode: str, double: bool) -> None:
    p_o, p_a = probs
    got = fuse_probabilities(torch.from_numpy(p_o), torch.from_numpy(p_a), mode, double)
    np.testing.assert_allclose(got.numpy(), _reference(p_o, p_a, mode, double), atol=1e-12)


@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("mode", IMAGE_FUSE_MODES)
def test_fuse_weights_match_numpy(probs, mode: str, double: bool) -> None:
    p_o, p_a = probs
    w0, w1 = fusion_weights(torch.from_numpy(p_o), torch.from_numpy(p_a), mode, double)
    expected = _reference_weights(p_o, p_a, mode, double)
    np.testing.assert_allclose(np.stack([w0, w1], 1), expected, atol=1e-12)


def test_sum_picks_the_more_confident_member_for_two_classes() -> None:
    p_o = torch.tensor([[0.6, 0.4], [0.9, 0.1], [0.45, 0.55]])
    p_a = torch.tensor([[0.2, 0.8], [0.3, 0.7], [0.52, 0.48]])
    labels = fuse_probabilities(p_o, p_a, "sum").argmax(1)
    assert labels.tolist() == [1, 0, 1]  # adapted, original, original (more peaked wins)


def test_sum_can_pick_a_third_class() -> None:
    # source says 0, adapted says 1, the sum (0.55, 0.55, 0.90) says 2
    p_o = torch.tensor([[0.50, 0.05, 0.45]])
    p_a = torch.tensor([[0.05, 0.50, 0.45]])
    assert fuse_probabilities(p_o, p_a, "sum").argmax(1).item() == 2


def test_selection_tie_rule_takes_adapted() -> None:
    p_o = torch.tensor([[0.7, 0.3], [0.8, 0.2]])
    p_a = torch.tensor([[0.3, 0.7], [0.6, 0.4]])
    for mode in ("confidence", "entropy", "var"):
        chosen = fuse_probabilities(p_o, p_a, mode)
        assert torch.equal(chosen[0], p_a[0]), mode  # tie -> adapted
        assert torch.equal(chosen[1], p_o[1]), mode  # source more peaked -> source


class _FakeInputAdapter(nn.Module):
    """Stand-in for the DDPM adapter: 'adapts' by adding a constant shift."""

    def __init__(self, classifier: nn.Module, shift: float) -> None:
        super().__init__()
        self.model = classifier
        self.shift = shift

    def adapt(self, images: torch.Tensor) -> torch.Tensor:
        return images + self.shift


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)
        torch.nn.init.normal_(self.fc.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, batch):
        features = batch["image"].mean(dim=(2, 3))
        return {"logits": self.fc(features), "features": features}


@pytest.mark.parametrize("mode", FUSION_MODES)
def test_adapter_outputs_every_mode(mode: str) -> None:
    classifier = _Linear()
    inner = _FakeInputAdapter(classifier, 0.5)
    ensemble = SelfEnsemble(SelfEnsembleParams(mode=mode), BuildContext()).wrap(inner).eval()
    images = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    batch = {"image": images}
    with torch.no_grad():
        out = ensemble(batch)
        source = classifier(batch)["logits"]
        adapted = classifier({"image": images + 0.5})["logits"]
    torch.testing.assert_close(out["logits_source"], source)
    if mode == "first":
        torch.testing.assert_close(out["logits"], source)
        return
    torch.testing.assert_close(out["logits_adapted"], adapted)
    if mode == "second":
        torch.testing.assert_close(out["logits"], adapted)
    elif mode in PROBABILITY_MODES:
        fused = fuse_probabilities(source.softmax(1), adapted.softmax(1), mode)
        torch.testing.assert_close(out["probs"], fused)
        torch.testing.assert_close(out["logits"].softmax(1), fused / fused.sum(1, keepdim=True))
    else:
        w0, w1 = fusion_weights(source.softmax(1), adapted.softmax(1), mode)
        blend = images * w0.view(-1, 1, 1, 1) + (images + 0.5) * w1.view(-1, 1, 1, 1)
        torch.testing.assert_close(out["logits"], classifier({"image": blend})["logits"])


def test_identical_inputs_give_identical_outputs() -> None:
    classifier = _Linear()
    images = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    source = classifier({"image": images})["logits"].softmax(1)
    for mode in FUSION_MODES:
        ensemble = SelfEnsemble(SelfEnsembleParams(mode=mode), BuildContext()).wrap(
            _FakeInputAdapter(classifier, 0.0)
        )
        with torch.no_grad():
            out = ensemble.eval()({"image": images})
        torch.testing.assert_close(out["logits"].softmax(1), source, msg=mode)


def test_wrap_requires_the_input_adapter_and_training_passes_through() -> None:
    with pytest.raises(ComponentError, match="ddpm_adapter before"):
        SelfEnsemble(SelfEnsembleParams(), BuildContext()).wrap(_Linear())
    classifier = _Linear()
    ensemble = SelfEnsemble(SelfEnsembleParams(), BuildContext()).wrap(
        _FakeInputAdapter(classifier, 1.0)
    )
    images = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(
        ensemble.train()({"image": images})["logits"], classifier({"image": images})["logits"]
    )
    probs = SelfEnsembleParams(outputs_are_probabilities=True)
    assert probs.mode == "sum"
