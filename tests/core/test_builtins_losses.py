"""Built-in losses against numpy written from the formulas, plus the mixing convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios.builtins.losses import BCELoss, CrossEntropyLoss, MSELoss, class_weights
from asklepios.builtins.params import BCELossParams, CrossEntropyLossParams, MSELossParams
from asklepios_sdk import BuildContext, ComponentError, DataFacts

CTX = BuildContext(data=DataFacts(num_classes=3, class_counts=(6, 3, 1), num_samples=10))
LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
LABELS = np.array([0, 2, 1, 2])


def _np_ce(logits: np.ndarray, labels: np.ndarray, weight=None, eps: float = 0.0) -> float:
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    k = logits.shape[1]
    target = np.full_like(logits, eps / k)
    target[np.arange(len(labels)), labels] += 1 - eps
    w = np.ones(k) if weight is None else np.asarray(weight)
    per = -(target * logp * w[None, :]).sum(1)  # PyTorch weights each class term
    return float(per.sum() / w[labels].sum())


def _ce(**params) -> CrossEntropyLoss:
    return CrossEntropyLoss(CrossEntropyLossParams(**params), CTX)


def test_cross_entropy_matches_numpy() -> None:
    out = _ce()({"logits": torch.tensor(LOGITS)}, {"label": torch.tensor(LABELS)})
    assert float(out.total) == pytest.approx(_np_ce(LOGITS, LABELS), rel=1e-6)
    assert set(out.terms) == {"ce"}


def test_balanced_weights_are_n_over_k_nk() -> None:
    weights = class_weights("balanced", CTX, "core.cross_entropy")
    np.testing.assert_allclose(weights.numpy(), 10 / (3 * np.array([6, 3, 1])), rtol=1e-6)
    out = _ce(class_weights="balanced")(
        {"logits": torch.tensor(LOGITS)}, {"label": torch.tensor(LABELS)}
    )
    assert float(out.total) == pytest.approx(_np_ce(LOGITS, LABELS, weights.numpy()), rel=1e-5)


def test_label_smoothing_matches_numpy_and_torch() -> None:
    out = _ce(label_smoothing=0.2)(
        {"logits": torch.tensor(LOGITS)}, {"label": torch.tensor(LABELS)}
    )
    assert float(out.total) == pytest.approx(_np_ce(LOGITS, LABELS, eps=0.2), rel=1e-6)
    ref = torch.nn.functional.cross_entropy(
        torch.tensor(LOGITS), torch.tensor(LABELS), label_smoothing=0.2
    )
    assert float(out.total) == pytest.approx(float(ref), rel=1e-6)


def test_mixed_targets_follow_the_convention() -> None:
    logits = torch.tensor(LOGITS, requires_grad=True)
    batch = {"label": torch.tensor(LABELS), "label_b": torch.tensor([1, 1, 0, 0]), "lam": 0.7}
    out = _ce()({"logits": logits}, batch)
    expected = 0.7 * _np_ce(LOGITS, LABELS) + 0.3 * _np_ce(LOGITS, np.array([1, 1, 0, 0]))
    assert float(out.total.detach()) == pytest.approx(expected, rel=1e-6)
    out.total.backward()
    assert torch.isfinite(logits.grad).all()


def test_wrong_number_of_weights_is_an_error() -> None:
    with pytest.raises(ComponentError, match="2 values but the dataset has 3"):
        _ce(class_weights=[1.0, 2.0])


def test_bce_one_hot_and_single_logit() -> None:
    loss = BCELoss(BCELossParams(), CTX)
    out = loss({"logits": torch.tensor(LOGITS)}, {"label": torch.tensor(LABELS)})
    y = np.eye(3)[LABELS]
    p = 1 / (1 + np.exp(-LOGITS))
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    assert float(out.total) == pytest.approx(expected, rel=1e-6)
    single = loss({"logits": torch.tensor([[0.3], [-0.2]])}, {"label": torch.tensor([1, 0])})
    ps = 1 / (1 + np.exp(-np.array([0.3, -0.2])))
    assert float(single.total) == pytest.approx(-(np.log(ps[0]) + np.log(1 - ps[1])) / 2, rel=1e-6)


def test_mse_and_its_error_message() -> None:
    loss = MSELoss(MSELossParams(), BuildContext())
    out = loss({"logits": torch.tensor([[1.0], [3.0]])}, {"label": torch.tensor([0.0, 1.0])})
    assert float(out.total) == pytest.approx((1 + 4) / 2)
    with pytest.raises(ComponentError, match="batch key 'label'"):
        loss({"logits": torch.zeros(2, 1)}, {"target": torch.zeros(2)})
