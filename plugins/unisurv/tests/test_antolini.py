"""Antolini's time-dependent C: an O(n^2) pair loop, identities, Harrell's C without crossing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext
from asklepios_unisurv.metrics import SurvivalEvaluator, antolini_c, survival_metrics
from asklepios_unisurv.params import SurvivalEvaluatorParams
from lifelines.utils import concordance_index


def _loop(time, event, surv):
    """Antolini et al. 2005 pair by pair: i has an event and j is still at risk after t_i."""
    num = den = 0
    for i in range(len(time)):
        for j in range(len(time)):
            if i == j or not event[i]:
                continue
            if time[i] < time[j] or (time[i] == time[j] and not event[j]):
                k = min(int(time[i]), surv.shape[1] - 1)
                den += 1
                num += surv[i, k] < surv[j, k]
    return num / den


def _curves(n, num_bins, seed):
    logits = torch.randn(n, num_bins, generator=torch.Generator().manual_seed(seed))
    return (1 - torch.softmax(logits, -1).cumsum(-1)).clamp_min(0).double().numpy()


def test_small_fixture_with_tied_times_and_tied_curves_matches_the_pair_loop():
    rng = np.random.default_rng(0)
    time = rng.integers(0, 8, 40).astype(float)
    event = rng.integers(0, 2, 40)
    surv = np.round(_curves(40, 8, 1), 1)  # rounding makes ties in predicted survival
    tied = surv[:, 3][:, None] == surv[:, 3][None, :]
    np.fill_diagonal(tied, False)
    assert tied.any() and len(np.unique(time)) < len(time)
    assert antolini_c(time, event, surv) == pytest.approx(_loop(time, event, surv), abs=1e-15)


def test_hand_example():
    time = np.array([1.0, 2.0, 2.0, 3.0])
    event = np.array([1, 1, 0, 1])
    surv = np.array(
        [
            [0.9, 0.5, 0.2, 0.0],
            [0.8, 0.6, 0.3, 0.0],
            [0.9, 0.7, 0.1, 0.0],
            [0.7, 0.4, 0.4, 0.0],
        ]
    )
    # i=0 at bin 1 vs 1, 2, 3: 0.5 < 0.6, 0.5 < 0.7, 0.5 < 0.4 (no) -> 2 of 3;
    # i=1 at bin 2 vs 2 (censored at 2) and 3: 0.3 < 0.1 (no), 0.3 < 0.4 -> 1 of 2; 3 of 5.
    assert antolini_c(time, event, surv) == pytest.approx(3 / 5)
    assert _loop(time, event, surv) == pytest.approx(3 / 5)


def test_perfect_and_reversed_curves_give_one_and_zero():
    n, num_bins = 30, 40
    time = np.random.default_rng(2).permutation(np.arange(3, 3 + n)).astype(float)
    event = np.random.default_rng(3).integers(0, 2, n)
    event[0] = 1
    bins = np.arange(num_bins)
    perfect = 1 / (1 + np.exp(bins[None, :] - time[:, None]))  # falls at the subject's own time
    reversed_ = 1 / (1 + np.exp(bins[None, :] - (2 * n + 6 - time[:, None])))
    assert antolini_c(time, event, perfect) == 1.0
    assert antolini_c(time, event, reversed_) == 0.0
    assert antolini_c(time, event, np.tile(perfect[:1], (n, 1))) == 0.0  # ties are discordant


def test_equals_harrell_when_curves_do_not_cross():
    rng = np.random.default_rng(5)
    n = 120
    time = rng.permutation(np.arange(n)).astype(float) % 90 + 1  # bin 0: every S(0) = 1, a tie
    event = rng.integers(0, 2, n)
    rate = rng.uniform(0.01, 0.1, n)
    surv = np.exp(-np.outer(rate, np.arange(96)))
    ours = antolini_c(time, event, surv)
    assert ours == pytest.approx(_loop(time, event, surv), abs=1e-15)
    distinct = np.unique(time, return_index=True)[1]
    t, e, r, s = time[distinct], event[distinct], rate[distinct], surv[distinct]
    assert antolini_c(t, e, s) == pytest.approx(concordance_index(t, -r, e), abs=1e-12)


def test_undefined_and_bad_shapes():
    with pytest.raises(ValueError, match="no comparable pair"):
        antolini_c(np.array([1.0, 2.0]), np.array([0, 0]), np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"surv \(n, T_max\)"):
        antolini_c(np.array([1.0, 2.0]), np.array([1, 0]), np.ones((3, 4)))


def test_evaluator_reports_antolini_c_over_batches():
    rng = np.random.default_rng(0)
    n, num_bins = 100, 24
    time = rng.integers(1, 20, n)
    event = (rng.random(n) < 0.6).astype(int)
    logits = torch.randn(n, num_bins, generator=torch.Generator().manual_seed(4))
    ev = SurvivalEvaluator(SurvivalEvaluatorParams(), BuildContext())
    for lo in range(0, n, 32):
        batch = {
            "time": torch.tensor(time[lo : lo + 32]).float(),
            "event": torch.tensor(event[lo : lo + 32]),
        }
        ev.update({"logits": logits[lo : lo + 32]}, batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ev.compute()
    surv = (1 - torch.softmax(logits, -1).cumsum(-1)).clamp_min(0).double().numpy()
    assert out["antolini_c"] == pytest.approx(_loop(time, event, surv), abs=1e-9)
    assert ev.is_higher_better("antolini_c")
    plain = survival_metrics(time, event, surv.sum(1))
    assert "antolini_c" not in plain
