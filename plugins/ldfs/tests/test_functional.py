"""Spec formulas (§2.3-2.5, checks 1-3) against independent numpy implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asklepios_ldfs import _functional as fn


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_directional(real, syn, direction, kind="cosine", eps=1e-8):
    df = (syn - real) / (np.linalg.norm(syn - real, axis=-1, keepdims=True) + eps)
    dt = direction / (np.linalg.norm(direction, axis=-1, keepdims=True) + eps)
    if kind == "cosine":
        return np.mean(1 - (df * dt).sum(-1))
    if kind == "mse":
        return np.mean((df - dt) ** 2)
    return np.mean(np.abs(df - dt))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("kind", ["cosine", "mse", "mae"])
def test_directional_loss_matches_numpy(rng, kind):
    real = unit(rng.normal(size=(6, 1, 8)))
    syn = unit(rng.normal(size=(6, 3, 8)))
    direction = rng.normal(size=(6, 3, 8))
    got = fn.directional_loss(*(torch.tensor(a) for a in (real, syn, direction)), kind)
    assert float(got) == pytest.approx(np_directional(real, syn, direction, kind), rel=1e-10)


def test_directional_loss_algebra(rng):
    f = torch.tensor(unit(rng.normal(size=(4, 8))))
    dt = torch.tensor(rng.normal(size=(4, 8)))
    ortho = torch.tensor(rng.normal(size=(4, 8)))
    ortho = ortho - (ortho * dt).sum(-1, keepdim=True) / (dt * dt).sum(-1, keepdim=True) * dt
    for shift, expected in [(0.3 * dt, 0.0), (-0.3 * dt, 2.0), (0.3 * ortho, 1.0)]:
        assert float(fn.directional_loss(f, f + shift, dt)) == pytest.approx(expected, abs=1e-7)
    shift = torch.tensor(rng.normal(size=(4, 8)))
    base = fn.directional_loss(f, f + shift, dt)
    for scale in (1e-3, 0.5, 7.0):
        scaled = fn.directional_loss(f, f + scale * shift, dt)
        assert float(scaled) == pytest.approx(float(base), abs=1e-6)


def test_directional_gradient_is_finite_for_tiny_displacement(rng):
    f = torch.tensor(unit(rng.normal(size=(3, 8))))
    for size in (0.0, 1e-12, 1e-6):
        syn = (f + size * torch.ones_like(f)).requires_grad_(True)
        fn.directional_loss(f, syn, torch.ones_like(f)).backward()
        assert torch.isfinite(syn.grad).all()


def test_instance_anchor_loss_matches_numpy(rng):
    real, syn, d = (rng.normal(size=(5, 2, 8)) for _ in range(3))
    anchor = unit(real + d)
    expected = np.mean(1 - (unit(syn) * anchor).sum(-1))
    got = fn.instance_anchor_loss(*(torch.tensor(a) for a in (real, syn, d)))
    assert float(got) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize("temperature", [None, 0.01])
@pytest.mark.parametrize("weighted", [False, True])
def test_class_consistency_matches_numpy(rng, temperature, weighted):
    b, k, c, d = 6, 2, 4, 8
    syn = rng.normal(size=(b, k, d))
    text = unit(rng.normal(size=(k, c, d)))
    labels = np.array([0, 1, 2, 3, 1, 2])
    weights = np.array([1.0, 0.5, 0.25, 2.0]) if weighted else np.ones(c)
    logits = np.einsum("bkd,kcd->bkc", unit(syn), text) / (temperature or 1.0)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = -logp[np.arange(b)[:, None], np.arange(k)[None], labels[:, None]]
    w = weights[labels][:, None] * np.ones((1, k))
    expected = (w * nll).sum() / w.sum()
    got = fn.class_consistency_loss(
        torch.tensor(syn),
        torch.tensor(text),
        torch.tensor(labels),
        temperature,
        torch.tensor(weights) if weighted else None,
    )
    # the synthetic features are normalised with eps = 1e-8 in the denominator
    assert float(got) == pytest.approx(expected, rel=1e-7)


def np_pair(real, syn):
    s = unit(real) @ unit(real).T
    st = unit(syn) @ unit(syn).T
    mask = ~np.eye(len(real), dtype=bool)
    return np.mean((st - s)[mask] ** 2)


def test_pairwise_matches_numpy_and_invariances(rng):
    real = unit(rng.normal(size=(7, 8)))
    syn = unit(real + 0.4 * rng.normal(size=(7, 8)))
    got = fn.pairwise_similarity_loss(torch.tensor(real), torch.tensor(syn))
    assert float(got) == pytest.approx(np_pair(real, syn), rel=1e-10)
    t_real = torch.tensor(real)
    assert float(fn.pairwise_similarity_loss(t_real, t_real)) == pytest.approx(0, abs=1e-14)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    rotated = torch.tensor(real @ rotation.T)
    assert float(fn.pairwise_similarity_loss(t_real, rotated)) == pytest.approx(0, abs=1e-12)
    moved = real.copy()
    moved[2] = unit(rng.normal(size=8))
    assert float(fn.pairwise_similarity_loss(t_real, torch.tensor(moved))) > 1e-3


def test_pairwise_gradient_matches_finite_differences(rng):
    real = torch.tensor(unit(rng.normal(size=(5, 6))))
    syn = torch.tensor(unit(rng.normal(size=(5, 6))), requires_grad=True)
    loss = fn.pairwise_similarity_loss(real, syn)
    (grad,) = torch.autograd.grad(loss, syn)
    assert grad.abs().sum() > 0
    numeric = torch.zeros_like(syn)
    h = 1e-6
    with torch.no_grad():
        for i in range(5):
            for j in range(6):
                plus, minus = syn.clone(), syn.clone()
                plus[i, j] += h
                minus[i, j] -= h
                diff = fn.pairwise_similarity_loss(real, plus) - fn.pairwise_similarity_loss(
                    real, minus
                )
                numeric[i, j] = diff / (2 * h)
    torch.testing.assert_close(grad, numeric, atol=1e-4, rtol=0)


def test_lads_regularisers_and_diversity_match_numpy(rng):
    real = unit(rng.normal(size=(5, 8)))
    syn = rng.normal(size=(5, 2, 8))
    scale = math.exp(0.007)
    logits = scale * np.einsum("ikd,jd->kij", unit(syn), real)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected_nn = -np.mean([logp[k, i, i] for k in range(2) for i in range(5)])
    got = fn.nn_self_loss(torch.tensor(real), torch.tensor(syn))
    assert float(got) == pytest.approx(expected_nn, rel=1e-9)
    expected_anchor = np.mean(1 - (unit(syn) * real[:, None]).sum(-1))
    got = fn.anchor_loss(torch.tensor(real), torch.tensor(syn))
    assert float(got) == pytest.approx(expected_anchor, rel=1e-9)
    other = rng.normal(size=(5, 2, 8))
    z1, z2 = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 3))
    ratio = np.linalg.norm(syn - other, axis=-1) / np.linalg.norm(z1 - z2, axis=-1)
    got = fn.diversity_loss(*(torch.tensor(a) for a in (syn, other, z1, z2)))
    assert float(got) == pytest.approx(-ratio.mean(), rel=1e-7)


def test_select_source_picks_most_similar_prompt(rng):
    f = unit(rng.normal(size=(6, 8)))
    source = unit(rng.normal(size=(3, 4, 8)))
    labels = np.array([0, 1, 2, 3, 0, 1])
    best = np.argmax(np.einsum("bd,sbd->bs", f, source[:, labels]), axis=1)
    expected = source[best, labels]
    got = fn.select_source(torch.tensor(f), torch.tensor(source), torch.tensor(labels))
    np.testing.assert_allclose(got.numpy(), expected)


def test_text_noise_statistics_and_seeding():
    text = torch.nn.functional.normalize(torch.randn(1, 512, dtype=torch.float64), dim=-1)
    assert torch.equal(fn.text_noise(text, 0.0), text)
    gen = torch.Generator().manual_seed(0)
    draws = fn.text_noise(text.expand(10_000, -1), 0.1, gen)
    torch.testing.assert_close(draws.norm(dim=-1), torch.ones(10_000, dtype=torch.float64))
    # eps ~ N(0, I/d): t.eps -> 0 and ||eps||^2 -> 1 for large d, so cos -> 1 / sqrt(1 + sigma^2)
    analytic = 1.0 / math.sqrt(1.0 + 0.1**2)
    assert float((draws @ text.T).mean()) == pytest.approx(analytic, abs=0.005)
    first = fn.text_noise(text, 0.1, torch.Generator().manual_seed(1))
    again = fn.text_noise(text, 0.1, torch.Generator().manual_seed(1))
    other = fn.text_noise(text, 0.1, torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    per_dim = fn.text_noise(text.expand(2000, -1), 0.1, gen, "per_dimension")
    # per-dimension std 0.1 on d = 512: ||noise|| ~ 0.1 * sqrt(512), cos ~ 1 / sqrt(1 + 5.12)
    assert float((per_dim @ text.T).mean()) == pytest.approx(1 / math.sqrt(1 + 5.12), abs=0.01)
