"""PolyLoss against numpy transcriptions of the paper's formulas, plus its stated properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asklepios_polyloss.losses import PolyFocalLoss, PolyLoss
from asklepios_polyloss.params import PolyFocalLossParams, PolyLossParams
from asklepios_sdk import BuildContext
from pydantic import ValidationError

LOGITS = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 4.0, 0.0], [1.0, 1.0, -2.0]])
LABEL = np.array([0, 2, 1, 2])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _poly_n_reference(z: np.ndarray, y: np.ndarray, eps: list[float], smooth: float = 0.0) -> float:
    q = np.eye(z.shape[1])[y] * (1 - smooth) + smooth / z.shape[1]
    p = _softmax(z)
    ce = -(q * np.log(p)).sum(1)
    pt = (q * p).sum(1)
    poly = sum(e * (1 - pt) ** j for j, e in enumerate(eps, start=1))
    return float((ce + poly).mean())


def _poly(**params: object) -> PolyLoss:
    return PolyLoss(PolyLossParams(**params), BuildContext())  # type: ignore[arg-type]


def _run(loss: torch.nn.Module, logits: np.ndarray, label: np.ndarray, **extra: object) -> object:
    z = torch.tensor(logits, requires_grad=True)
    return loss({"logits": z}, {"label": torch.tensor(label), **extra}), z


@pytest.mark.parametrize(
    ("eps", "smooth"), [([1.0], 0.0), ([2.0], 0.1), ([-1.0], 0.0), ([0.5, -0.3, 0.2], 0.0)]
)
def test_poly_n_matches_the_formula(eps: list[float], smooth: float) -> None:
    out, _ = _run(_poly(epsilon=eps, label_smoothing=smooth), LOGITS, LABEL)
    assert math.isclose(
        float(out.total.detach()), _poly_n_reference(LOGITS, LABEL, eps, smooth), rel_tol=1e-6
    )
    assert set(out.terms) == {"ce", "poly"}


def test_zero_epsilon_is_cross_entropy() -> None:
    out, _ = _run(_poly(epsilon=[0.0]), LOGITS, LABEL)
    expected = torch.nn.functional.cross_entropy(torch.tensor(LOGITS), torch.tensor(LABEL))
    assert torch.isclose(out.total, expected.float())


def test_poly1_gradient_is_ce_gradient_scaled_by_one_plus_eps_pt() -> None:
    eps = 1.5
    out, z = _run(_poly(epsilon=[eps]), LOGITS, LABEL)
    out.total.backward()
    p = _softmax(LOGITS)
    onehot = np.eye(3)[LABEL]
    pt = p[np.arange(len(LABEL)), LABEL][:, None]
    expected = (p - onehot) * (1 + eps * pt) / len(LABEL)
    assert np.allclose(z.grad.numpy(), expected, atol=1e-6)


def test_subtracting_the_leading_coefficients_leaves_the_tail_of_ce() -> None:
    n = 40  # eps_j = -1/j cancels the first n terms of CE = sum_j (1 - p_t)^j / j
    out, _ = _run(_poly(epsilon=[-1 / j for j in range(1, n + 1)]), LOGITS, LABEL)
    pt = _softmax(LOGITS)[np.arange(len(LABEL)), LABEL]
    tail = np.mean([sum((1 - p) ** j / j for j in range(n + 1, 4000)) for p in pt])
    assert math.isclose(float(out.total.detach()), tail, rel_tol=1e-4, abs_tol=1e-7)


def test_mixed_targets_equal_the_lam_weighted_losses_for_poly1() -> None:
    loss = _poly(epsilon=[1.0])
    label_b = np.array([1, 0, 2, 2])
    lam = torch.tensor(0.3)
    mixed, _ = _run(loss, LOGITS, LABEL, label_b=torch.tensor(label_b), lam=lam)
    first, _ = _run(loss, LOGITS, LABEL)
    second, _ = _run(loss, LOGITS, label_b)
    assert torch.isclose(mixed.total, 0.3 * first.total + 0.7 * second.total)


def test_poly1_epsilon_below_minus_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="epsilon >= -1"):
        PolyLossParams(epsilon=[-1.5])


def _poly_focal_reference(
    z: np.ndarray, y: np.ndarray, eps: float, gamma: float, alpha: float | None
) -> float:
    p = 1 / (1 + np.exp(-z))
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    pt = y * p + (1 - y) * (1 - p)
    fl = bce * (1 - pt) ** gamma
    if alpha is not None:
        fl = (alpha * y + (1 - alpha) * (1 - y)) * fl
    return float((fl + eps * (1 - pt) ** (gamma + 1)).mean())


@pytest.mark.parametrize(
    ("eps", "gamma", "alpha"), [(-1.0, 2.0, 0.25), (1.0, 1.0, None), (0.0, 0.0, None)]
)
def test_poly_focal_matches_the_formula(eps: float, gamma: float, alpha: float | None) -> None:
    multi_hot = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss = PolyFocalLoss(PolyFocalLossParams(epsilon=eps, gamma=gamma, alpha=alpha), BuildContext())
    out, _ = _run(loss, LOGITS, multi_hot)
    expected = _poly_focal_reference(LOGITS, multi_hot, eps, gamma, alpha)
    assert math.isclose(float(out.total.detach()), expected, rel_tol=1e-6)
    if eps == 0.0 and gamma == 0.0:  # no focusing, no poly term: plain BCE
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.tensor(LOGITS), torch.tensor(multi_hot)
        )
        assert torch.isclose(out.total, bce.float())


def test_poly_focal_takes_class_indices_one_vs_rest() -> None:
    loss = PolyFocalLoss(PolyFocalLossParams(), BuildContext())
    by_index, _ = _run(loss, LOGITS, LABEL)
    by_multi_hot, _ = _run(loss, LOGITS, np.eye(3)[LABEL])
    assert torch.isclose(by_index.total, by_multi_hot.total)
