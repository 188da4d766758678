"""Losses against independent numpy implementations on the spec fixture (§3, §8.1, §8.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _fixtures import (
    CENTERS,
    COUNTS,
    F1,
    F2,
    FY,
    Y,
    Z,
    batch,
    make_ctx,
    np_cb,
    np_ce,
    np_logsumexp,
    np_softmax,
    np_weighted_ce,
    outputs,
)
from asklepios_longtail import _functional as fn
from asklepios_longtail.losses.adjustment import (
    BalancedSoftmaxLoss,
    GCLLoss,
    LADELoss,
    LogitAdjustedLoss,
    SeesawLoss,
    SEQLLoss,
    VSLoss,
)
from asklepios_longtail.losses.experts import RIDELoss, SADELoss
from asklepios_longtail.losses.representation import CenterLoss, ConMixLoss, RangeLoss
from asklepios_longtail.losses.reweighting import (
    CBLoss,
    FocalLoss,
    LabelAwareSmoothingLoss,
    LDAMLoss,
    WeightedCELoss,
)
from asklepios_longtail.params import (
    BalancedSoftmaxLossParams,
    CBLossParams,
    CenterLossParams,
    ConMixLossParams,
    FocalLossParams,
    GCLLossParams,
    LabelAwareSmoothingLossParams,
    LADELossParams,
    LDAMLossParams,
    LogitAdjustedLossParams,
    RangeLossParams,
    RIDELossParams,
    SADELossParams,
    SeesawLossParams,
    SEQLLossParams,
    VSLossParams,
    WeightedCELossParams,
)
from asklepios_sdk import ComponentError

RTOL = 1e-5
PI = COUNTS / COUNTS.sum()


def value(loss, out=None, b=None) -> float:
    return float(loss(out or outputs(), b or batch()).total.detach())


# ---------------------------------------------------------------- class vectors


def test_class_vectors_match_formulas():
    n = COUNTS
    np.testing.assert_allclose(fn.cb_weights(n), np_cb(n), rtol=1e-12)
    np.testing.assert_allclose(fn.log_inverse_weights(n), 1 + np.log(500 / n), rtol=1e-12)
    grw = PI**-1.2
    np.testing.assert_allclose(fn.grw_weights(n), grw / grw.sum() * 4, rtol=1e-12)
    m = n**-0.25
    np.testing.assert_allclose(fn.ldam_margins(n), 0.5 * m / m.max(), rtol=1e-12)
    np.testing.assert_allclose(fn.vs_scales(n), (n / 500) ** 0.3, rtol=1e-12)
    eps = 0.3 * np.sin((n - 5) * np.pi / (2 * 495))
    np.testing.assert_allclose(fn.label_aware_epsilon(n), eps, rtol=1e-12, atol=1e-15)


def test_class_vector_properties():
    w = fn.cb_weights(COUNTS)
    assert w.sum() == pytest.approx(4)
    assert np.all(np.diff(w) > 0)  # decreasing in n_c (counts are decreasing)
    assert fn.ldam_margins(COUNTS)[-1] == pytest.approx(0.5)
    eps = fn.label_aware_epsilon(COUNTS)
    assert eps[0] == pytest.approx(0.3) and eps[-1] == pytest.approx(0.0)
    np.testing.assert_allclose(fn.inverted_prior(COUNTS), [0.008, 0.032, 0.16, 0.8])


def test_empty_class_counts_error_names_the_component():
    with pytest.raises(ComponentError, match=r"CBLoss.*classes \[1\]"):
        CBLoss(CBLossParams(), make_ctx([3, 0, 2]))


# ---------------------------------------------------------------- re-weighting


def test_plain_ce():
    loss = WeightedCELoss(WeightedCELossParams(), make_ctx())
    assert value(loss) == pytest.approx(np_ce(Z, Y).mean(), rel=RTOL)


@pytest.mark.parametrize(
    ("weights", "reference"),
    [
        ("cb", np_cb(COUNTS)),
        ("log_inverse", 1 + np.log(COUNTS.max() / COUNTS)),
        ("grw", PI**-1.2 / (PI**-1.2).sum() * 4),
    ],
)
def test_weighted_ce(weights, reference):
    loss = WeightedCELoss(WeightedCELossParams(class_weights=weights), make_ctx())
    assert value(loss) == pytest.approx(np_weighted_ce(Z, Y, reference), rel=RTOL)


def test_focal():
    ce = np_ce(Z, Y)
    expected = ((1 - np.exp(-ce)) ** 2 * ce).mean()
    assert value(FocalLoss(FocalLossParams(), make_ctx())) == pytest.approx(expected, rel=RTOL)


def test_cb_softmax_bce():
    p = np_softmax(Z)
    t = np.eye(4)[Y]
    bce = -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))
    w = np_cb(COUNTS)[Y][:, None]
    expected = (w * bce).sum() / (6 * 4)
    assert value(CBLoss(CBLossParams(), make_ctx())) == pytest.approx(expected, rel=RTOL)


def test_cb_sigmoid_focal():
    t = np.eye(4)[Y]
    q = 1 / (1 + np.exp(-Z))
    pt = np.where(t == 1, q, 1 - q)
    bce = -(t * np.log(q) + (1 - t) * np.log(1 - q))
    w = np_cb(COUNTS)[Y][:, None]
    expected = (w * (1 - pt) ** 2 * bce).sum() / 6
    loss = CBLoss(CBLossParams(variant="sigmoid_focal"), make_ctx())
    assert value(loss) == pytest.approx(expected, rel=RTOL)


def _np_ldam(weights):
    m = COUNTS**-0.25
    m = 0.5 * m / m.max()
    shifted = Z - np.eye(4)[Y] * m[Y][:, None]
    return np_weighted_ce(30 * shifted, Y, weights)


def test_ldam_drw_schedule_e10():
    loss = LDAMLoss(LDAMLossParams(), make_ctx(epochs=10))
    for epoch in range(10):
        loss.set_epoch(epoch)
        expected = _np_ldam(None if epoch < 8 else np_cb(COUNTS))
        assert value(loss) == pytest.approx(expected, rel=RTOL), epoch


def test_ldam_without_drw_and_ce_identity():
    loss = LDAMLoss(LDAMLossParams(drw=False), make_ctx(epochs=10))
    loss.set_epoch(9)
    assert value(loss) == pytest.approx(_np_ldam(None), rel=RTOL)
    plain = LDAMLoss(LDAMLossParams(s=1, max_m=0, drw=False), make_ctx())
    assert value(plain) == pytest.approx(np_ce(Z, Y).mean(), rel=RTOL)


def test_weighted_ce_drw_switches_at_int_0_8_e():
    loss = WeightedCELoss(WeightedCELossParams(drw=True), make_ctx(epochs=50))
    loss.set_epoch(39)
    assert loss.current_weight() is None
    loss.set_epoch(40)
    np.testing.assert_allclose(loss.current_weight().numpy(), np_cb(COUNTS), rtol=1e-6)


def test_label_aware_smoothing():
    eps = 0.3 * np.sin((COUNTS - 5) * np.pi / (2 * 495))
    logp = Z - np_logsumexp(Z)[:, None]
    e = eps[Y]
    expected = ((1 - e) * -logp[np.arange(6), Y] + e * -logp.mean(axis=1)).mean()
    loss = LabelAwareSmoothingLoss(LabelAwareSmoothingLossParams(), make_ctx())
    assert value(loss) == pytest.approx(expected, rel=RTOL)
    zero = LabelAwareSmoothingLoss(LabelAwareSmoothingLossParams(eps_head=0), make_ctx())
    assert value(zero) == pytest.approx(np_ce(Z, Y).mean(), rel=RTOL)


# ---------------------------------------------------------------- logit adjustment


def test_balanced_softmax_and_prior_ce():
    bs = BalancedSoftmaxLoss(BalancedSoftmaxLossParams(), make_ctx())
    prior_ce = BalancedSoftmaxLoss(BalancedSoftmaxLossParams(prior="frequency"), make_ctx())
    expected = np_ce(Z + np.log(COUNTS), Y).mean()
    assert value(bs) == pytest.approx(expected, rel=RTOL)
    assert value(prior_ce) == pytest.approx(np_ce(Z + np.log(PI + 1e-9), Y).mean(), rel=RTOL)


def test_prior_ce_equals_balanced_softmax_on_random_inputs():
    gen = torch.Generator().manual_seed(0)
    counts = torch.randint(1, 1000, (7,), generator=gen).tolist()
    ctx = make_ctx(counts)
    z = torch.randn(32, 7, generator=gen) * 3
    y = torch.randint(0, 7, (32,), generator=gen)
    a = BalancedSoftmaxLoss(BalancedSoftmaxLossParams(), ctx)({"logits": z}, {"label": y}).total
    b = BalancedSoftmaxLoss(BalancedSoftmaxLossParams(prior="frequency"), ctx)(
        {"logits": z}, {"label": y}
    ).total
    assert float(a) == pytest.approx(float(b), abs=1e-6)


def test_logit_adjusted_both_signs():
    adj = np.log((COUNTS / COUNTS.max()) ** 1.0 + 1e-12)
    paper = LogitAdjustedLoss(LogitAdjustedLossParams(), make_ctx())
    monica = LogitAdjustedLoss(LogitAdjustedLossParams(monica_sign=True), make_ctx())
    assert value(paper) == pytest.approx(np_ce(Z + adj, Y).mean(), rel=RTOL)
    assert value(monica) == pytest.approx(np_ce(Z - adj, Y).mean(), rel=RTOL)
    bs = BalancedSoftmaxLoss(BalancedSoftmaxLossParams(), make_ctx())
    assert value(paper) == pytest.approx(value(bs), rel=1e-6)


def _np_lade_reg(lam=0.1):
    c = 4
    a = Z - np.log(PI + 1e-9) + np.log(1 / c + 1e-9)
    est = np.zeros(c)
    for k in range(c):
        members = k == Y
        first = Z[members, k].sum() / (members.sum() + 1e-8)
        second = np_logsumexp(a[:, k][None, :])[0] - np.log(len(Y))
        est[k] = first - second - lam * second**2
    return -(PI * est).sum()


def test_lade_regulariser_and_total():
    loss = LADELoss(LADELossParams(), make_ctx())
    reg = loss.regulariser(outputs()["logits"], batch()["label"])
    assert float(reg.detach()) == pytest.approx(_np_lade_reg(), rel=RTOL)
    expected = np_ce(Z + np.log(PI + 1e-9), Y).mean() + 0.1 * _np_lade_reg()
    assert value(loss) == pytest.approx(expected, rel=RTOL)


def test_vs_and_identity():
    expected = np_ce(Z * (COUNTS / 500) ** 0.3 + np.log(PI), Y).mean()
    assert value(VSLoss(VSLossParams(), make_ctx())) == pytest.approx(expected, rel=RTOL)
    ident = VSLoss(VSLossParams(gamma=0, tau=0), make_ctx())
    assert value(ident) == pytest.approx(np_ce(Z, Y).mean(), rel=RTOL)


def test_seql_equals_ce_when_no_class_is_rare():
    loss = SEQLLoss(SEQLLossParams(), make_ctx())
    assert value(loss) == pytest.approx(np_ce(Z, Y).mean(), rel=RTOL)


def test_seql_masks_rare_class_gradient():
    counts = [10000, 10000, 10000, 1]  # π_3 ≈ 3.3e-5 ≤ λ
    torch.manual_seed(0)
    always = SEQLLoss(SEQLLossParams(gamma=1.0), make_ctx(counts))
    z = torch.randn(400, 4, requires_grad=True)
    y = torch.randint(0, 3, (400,))
    always({"logits": z}, {"label": y}).total.backward()
    assert torch.all(z.grad[:, 3] == 0)
    kept = SEQLLoss(SEQLLossParams(), make_ctx(counts))
    z2 = torch.randn(20000, 4, requires_grad=True)
    y2 = torch.randint(0, 3, (20000,))
    kept({"logits": z2}, {"label": y2}).total.backward()
    assert (z2.grad[:, 3] != 0).float().mean().item() == pytest.approx(0.1, abs=0.01)


def _np_gcl(cos, eps_abs, kappa=0.5, m=0.0, s=30.0):
    clouds = np.log(COUNTS.max()) - np.log(COUNTS)
    pert = cos - kappa * eps_abs * clouds / clouds.max()
    pert = pert - m * np.eye(4)[Y]
    return np_ce(s * pert, Y).mean()


def test_gcl_fixture_cases():
    cos = np.tanh(Z / 3)
    out = outputs(cos)
    no_noise = GCLLoss(GCLLossParams(noise_mul=0), make_ctx())
    assert value(no_noise, out) == pytest.approx(_np_gcl(cos, 0, kappa=0), rel=RTOL)
    margin = GCLLoss(GCLLossParams(noise_mul=0, m=0.5), make_ctx())
    assert value(margin, out) == pytest.approx(_np_gcl(cos, 0, kappa=0, m=0.5), rel=RTOL)
    eps = np.abs(np.random.default_rng(0).normal(0, 1 / 3, Z.shape)).clip(0, 1)
    noisy = GCLLoss(GCLLossParams(), make_ctx())
    noisy.fixed_noise = torch.tensor(eps, dtype=torch.float32)
    assert value(noisy, out) == pytest.approx(_np_gcl(cos, eps), rel=RTOL)


def test_gcl_perturbation_statistics():
    loss = GCLLoss(GCLLossParams(), make_ctx())
    torch.manual_seed(0)
    like = torch.zeros(10000, 4)
    pert = 0.5 * loss.noise(like) * loss.relative_cloud
    assert torch.all(pert[:, 0] == 0)
    assert pert[:, 3].mean().item() == pytest.approx(0.5 * 0.26571, abs=0.004)


def test_sade_loss_and_inverted_prior():
    e1, e2, e3 = Z, Z[::-1].copy(), np.roll(Z, 1, axis=1)
    lp = np.log(PI + 1e-9)
    inv = np.array([0.008, 0.032, 0.16, 0.8])
    expected = (
        np_ce(e1, Y).mean()
        + np_ce(e2 + lp, Y).mean()
        + np_ce(e3 + lp - 2 * np.log(inv + 1e-9), Y).mean()
    )
    loss = SADELoss(SADELossParams(), make_ctx())
    out = outputs(expert_logits=np.stack([e1, e2, e3]))
    assert value(loss, out) == pytest.approx(expected, rel=RTOL)


def test_ride_loss_against_numpy():
    rng = np.random.default_rng(1)
    experts = rng.normal(size=(3, 6, 4)) * 3
    ensemble = experts.mean(axis=0)
    m = COUNTS**-0.25
    m = 0.5 * m / m.max()

    def reference(reweight_on):
        w = np_cb(COUNTS) if reweight_on else None
        temps = 4 * PI * 0.05 + 0.95
        temps = temps / temps.max()
        t = temps[None, :] if reweight_on else 1.0
        t_mean = temps.mean() if reweight_on else 1.0
        target = np_softmax(ensemble / t)
        total = 0.0
        for k in range(3):
            shifted = experts[k] - 30 * np.eye(4)[Y] * m[Y][:, None]
            total += np_weighted_ce(shifted, Y, w)
            logq = experts[k] / t - np_logsumexp(experts[k] / t)[:, None]
            kl = (target * (np.log(target) - logq)).sum() / 6
            total += -0.2 * t_mean**2 * kl
        return total

    loss = RIDELoss(RIDELossParams(), make_ctx(epochs=10))
    out = outputs(ensemble, expert_logits=experts)
    assert value(loss, out) == pytest.approx(reference(False), rel=RTOL)
    loss.set_epoch(8)
    assert value(loss, out) == pytest.approx(reference(True), rel=RTOL)


def test_seesaw_identity_and_mitigation():
    ce = np_ce(Z, Y).mean()
    plain = SeesawLoss(SeesawLossParams(p=0, q=0), make_ctx())
    assert value(plain) == pytest.approx(ce, rel=RTOL)
    fixed = SeesawLoss(SeesawLossParams(counts="fixed", q=0), make_ctx())
    n = COUNTS
    ratio = n[None, :] / n[:, None]
    mitig = np.where(ratio < 1, ratio**0.8, 1.0)
    adjusted = Z + np.log(mitig[Y]) * (1 - np.eye(4)[Y])
    assert value(fixed) == pytest.approx(np_ce(adjusted, Y).mean(), rel=RTOL)
    # more frequent negatives than the target class are never mitigated
    assert np.all(mitig[np.triu_indices(4, 1)[::-1]] == 1)


def test_seesaw_compensation_and_online_counts():
    loss = SeesawLoss(SeesawLossParams(), make_ctx())
    loss.train()
    out = value(loss)
    seen = np.bincount(Y, minlength=4).astype(float)
    np.testing.assert_array_equal(loss.cum_samples.numpy(), seen)
    cum = np.maximum(seen, 1)
    ratio = cum[None, :] / cum[:, None]
    mitig = np.where(ratio < 1, ratio**0.8, 1.0)[Y]
    p = np_softmax(Z)
    r = p / np.maximum(p[np.arange(6), Y], 1e-2)[:, None]
    comp = np.where(r > 1, r**2, 1.0)
    adjusted = Z + np.log(mitig * comp) * (1 - np.eye(4)[Y])
    assert out == pytest.approx(np_ce(adjusted, Y).mean(), rel=RTOL)


# ---------------------------------------------------------------- representation losses


def test_conmix_nt_xent():
    def means(f):
        return np.stack([f[k == FY].mean(axis=0) for k in range(3)])

    h = np.concatenate([means(F1), means(F2)])
    h = h / np.linalg.norm(h, axis=1, keepdims=True)
    sim = h @ h.T / 0.5
    total = 0.0
    for a in range(6):
        pos = (a + 3) % 6
        denom = sum(np.exp(sim[a, b]) for b in range(6) if b != a)
        total += -np.log(np.exp(sim[a, pos]) / denom)
    loss = ConMixLoss(ConMixLossParams(), make_ctx([2, 2, 2]))
    out = outputs(np.zeros((6, 3)), features=F1, features_view2=F2)
    assert value(loss, out, batch(FY)) == pytest.approx(total / 6, rel=RTOL)
    one_class = value(loss, out, batch(np.zeros(6, dtype=int)))
    assert one_class == pytest.approx(0.0, abs=1e-6)
    single = outputs(np.zeros((6, 3)), features=F1)
    with pytest.raises(ComponentError, match="features_view2"):
        loss(single, batch(FY))
    with torch.no_grad():
        assert float(loss(single, batch(FY)).total) == 0.0


def _center_loss(kind):
    loss = CenterLoss(CenterLossParams(variant=kind, feat_dim=4, epochs=10), make_ctx([2, 2, 2]))
    with torch.no_grad():
        loss.centers.copy_(torch.tensor(CENTERS))
    return loss


@pytest.mark.parametrize("kind", ["origin", "cos", "triplet"])
def test_center_terms(kind):
    own = CENTERS[FY]
    if kind == "origin":
        expected = ((F1 - own) ** 2).sum(axis=1).mean()
    elif kind == "cos":
        cos = (F1 * own).sum(1) / np.linalg.norm(F1, axis=1) / np.linalg.norm(own, axis=1)
        expected = (1 - cos).mean()
    else:
        logits = 2 * F1[:, :3]
        p = np_softmax(logits)
        p[np.arange(6), FY] = -1
        neg = CENTERS[p.argmax(axis=1)]
        d_pos = np.linalg.norm(F1 - own + 1e-6, axis=1)
        d_neg = np.linalg.norm(F1 - neg + 1e-6, axis=1)
        expected = np.maximum(0, d_pos - d_neg + 1).mean()
    loss = _center_loss(kind)
    logits = torch.tensor(2 * F1[:, :3], dtype=torch.float32)
    term = loss.center_term(torch.tensor(F1, dtype=torch.float32), logits, batch(FY)["label"], None)
    assert float(term.detach()) == pytest.approx(expected, rel=RTOL)


def test_center_schedule_and_parameters():
    loss = CenterLoss(CenterLossParams(feat_dim=4), make_ctx([2, 2, 2], epochs=50))
    weights = []
    for e in (0, 29, 30, 39, 40, 49):
        loss.set_epoch(e)
        weights.append(loss.weight())
    assert weights == [0, 0, 0.001, 0.001, 0.005, 0.005]
    assert any(p is loss.centers for p in loss.parameters())
    frozen = CenterLoss(
        CenterLossParams(feat_dim=4, centers_not_optimised=True), make_ctx([2, 2, 2], epochs=50)
    )
    assert list(frozen.parameters()) == []


def _np_range(x, y, k=2, margin=0.1):
    def dist(a):
        sq = (a * a).sum(1)
        return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * a @ a.T, 1e-12))

    intra = 0.0
    for c in np.unique(y):
        d = np.sort(dist(x[y == c]).ravel())
        top = d[max(len(d) - 2 * k, 0) :: 2]
        intra += k / np.sum(1 / top)
    means = np.stack([x[y == c].mean(axis=0) for c in np.unique(y)])
    dm = dist(means)
    inter = max(0.0, margin - np.sort(dm.ravel())[len(means)])
    return 0.5 * intra + 0.5 * inter


def test_range_loss_alone_on_logits_and_with_ce():
    y = np.array([0, 0, 0, 1, 1, 2])
    alone = RangeLoss(RangeLossParams(range_loss_alone=True), make_ctx())
    assert value(alone, outputs(), batch(y)) == pytest.approx(_np_range(Z, y), rel=1e-4)
    with_ce = RangeLoss(RangeLossParams(), make_ctx())
    out = outputs(features=F1)
    expected = _np_range(F1, y) + np_ce(Z, y).mean()
    assert value(with_ce, out, batch(y)) == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------- mixing and gradients


def test_mixing_with_lambda_one_or_identity_equals_base():
    loss = FocalLoss(FocalLossParams(), make_ctx())
    base = value(loss)
    perm = torch.tensor(Y[::-1].copy())
    assert value(loss, b=batch(label_b=perm, lam=torch.tensor(1.0))) == pytest.approx(base)
    same = batch(label_b=torch.tensor(Y), lam=torch.tensor(0.3))
    assert value(loss, b=same) == pytest.approx(base, rel=1e-6)


def test_per_sample_mixing_weight():
    loss = WeightedCELoss(WeightedCELossParams(class_weights="cb"), make_ctx())
    yb = np.array([1, 1, 0, 2, 3, 0])
    lam = np.array([1.0, 0.0, 0.5, 0.2, 1.0, 0.7])
    w = np_cb(COUNTS)
    ce_a, ce_b = np_ce(Z, Y), np_ce(Z, yb)
    expected = (lam * w[Y] * ce_a).sum() / w[Y].sum() + ((1 - lam) * w[yb] * ce_b).sum() / w[
        yb
    ].sum()
    b = batch(label_b=torch.tensor(yb), lam=torch.tensor(lam, dtype=torch.float32))
    assert value(loss, b=b) == pytest.approx(expected, rel=RTOL)
    with pytest.raises(ComponentError, match="per-sample"):
        LADELoss(LADELossParams(), make_ctx())(outputs(), b)


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (WeightedCELoss, WeightedCELossParams(class_weights="cb")),
        (FocalLoss, FocalLossParams()),
        (CBLoss, CBLossParams()),
        (CBLoss, CBLossParams(variant="sigmoid_focal")),
        (LDAMLoss, LDAMLossParams()),
        (LADELoss, LADELossParams()),
        (VSLoss, VSLossParams()),
        (LabelAwareSmoothingLoss, LabelAwareSmoothingLossParams()),
        (LogitAdjustedLoss, LogitAdjustedLossParams()),
    ],
)
def test_gradients_match_finite_differences(cls, params):
    torch.manual_seed(0)
    loss = cls(params, make_ctx()).double()
    z = torch.tensor(Z, dtype=torch.float64, requires_grad=True)

    def fun(t):
        return loss({"logits": t}, batch()).total

    assert torch.autograd.gradcheck(fun, (z,), eps=1e-6, atol=1e-5)
    assert math.isfinite(float(fun(z).detach()))
