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


def _confidence(p: np.ndarray, double: bool) -> np.ndarray:
    return (_softmax(p) if double else p).max(1)


def _reference(p_o: np.ndarray, p_a: np.ndarray, mode: str, double: bool) -> np.ndarray:
    if mode == "sum":
        return p_o + p_a
    if mode == "confidence_sum":
        return p_o * _confidence(p_o, double)[:, None] + p_a * _confidence(p_a, double)[:, None]
    if mode == "entropy_sum":
        return p_o * _entropy(p_a, double)[:, None] + p_a * _entropy(p_o, double)[:, None]
    out = []
    for i in range(len(p_o)):
        if mode == "confidence":
            take = _confidence(p_o[i : i + 1], double)[0] <= _confidence(p_a[i : i + 1], double)[0]
        elif mode == "entropy":
            take = _entropy(p_o[i : i + 1], double)[0] >= _entropy(p_a[i : i + 1], double)[0]
        else:
            take = np.var(p_o[i]) <= np.var(p_a[i])
        out.append(p_a[i] if take else p_o[i])
    return np.stack(out)


def _reference_weights(p_o: np.ndarray, p_a: np.ndarray, mode: str, double: bool) -> np.ndarray:
    if mode == "confidence_fuse":
        scores = np.stack([_confidence(p_o, double), _confidence(p_a, double)], 1)
    elif mode == "entropy_fuse":
        scores = np.stack([_entropy(p_a, double), _entropy(p_o, double)], 1)
    else:
        scores = np.stack([p_o.var(1, ddof=1), p_a.var(1, ddof=1)], 1)
    return _softmax(scores)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _dda(logits1: np.ndarray, logits2: np.ndarray, mode: str) -> np.ndarray:
    """Transcribe DDA's ``model_adapt/evaluation.py`` rules (its "logits" are probabilities).

    Returns the fused scores of a ``*sum`` or select mode, or the image weights ``(B, 2)`` of a
    ``*_fuse`` mode.
    """

    def ent(z: np.ndarray) -> np.ndarray:
        return -(_softmax(z) * _log_softmax(z)).sum(1, keepdims=True)

    def con(z: np.ndarray) -> np.ndarray:
        return _softmax(z).max(1, keepdims=True)

    def var(z: np.ndarray) -> np.ndarray:
        return z.var(1, ddof=1, keepdims=True)

    if mode == "sum":
        return logits1 + logits2
    if mode == "entropy_sum":
        return logits1 * ent(logits2) + logits2 * ent(logits1)
    if mode == "confidence_sum":
        return logits1 * con(logits1) + logits2 * con(logits2)
    if mode in ("entropy", "confidence", "var"):
        idx = {
            "entropy": lambda: ent(logits1) >= ent(logits2),
            "confidence": lambda: con(logits1) <= con(logits2),
            "var": lambda: var(logits1) <= var(logits2),
        }[mode]()
        return logits1 * np.logical_not(idx) + logits2 * idx
    pair = {
        "entropy_fuse": lambda: (ent(logits2), ent(logits1)),
        "confidence_fuse": lambda: (con(logits1), con(logits2)),
        "var_fuse": lambda: (var(logits1), var(logits2)),
    }[mode]()
    return _softmax(np.concatenate(pair, 1))


@pytest.mark.parametrize("k", [2, 8, 1000])
@pytest.mark.parametrize("mode", PROBABILITY_MODES + IMAGE_FUSE_MODES)
def test_faithful_flag_matches_dda_code(mode: str, k: int) -> None:
    rng = np.random.default_rng(k)
    p_o = _softmax(rng.normal(0, 3, (64, k)))
    p_a = _softmax(rng.normal(0, 3, (64, k)))
    expected = _dda(p_o, p_a, mode)
    t_o, t_a = torch.from_numpy(p_o), torch.from_numpy(p_a)
    if mode in IMAGE_FUSE_MODES:
        w0, w1 = fusion_weights(t_o, t_a, mode, double_softmax=True)
        got = torch.stack([w0, w1], 1).numpy()
    else:
        got = fuse_probabilities(t_o, t_a, mode, double_softmax=True).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_faithful_confidence_scores_differ_from_the_default() -> None:
    # max p ranks o above a, max softmax(p) ranks a above o (a spreads its mass differently)
    p_o = torch.tensor([[0.50, 0.50, 0.00, 0.00]], dtype=torch.float64)
    p_a = torch.tensor([[0.49, 0.17, 0.17, 0.17]], dtype=torch.float64)
    assert torch.equal(fuse_probabilities(p_o, p_a, "confidence"), p_o)
    assert torch.equal(fuse_probabilities(p_o, p_a, "confidence", double_softmax=True), p_a)


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
