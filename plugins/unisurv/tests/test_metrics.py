"""Survival evaluator: C-index identities, MAE variants by hand, batching, IPCW extras."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, DataFacts
from asklepios_unisurv.metrics import SurvivalEvaluator, survival_metrics
from asklepios_unisurv.params import SurvivalEvaluatorParams
from sksurv.metrics import concordance_index_censored


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    time = rng.permutation(np.arange(1, n + 1) * 0.2)
    event = rng.integers(0, 2, n)
    return time, event


def test_constant_prediction_gives_one_half_and_reversed_perfect_gives_zero():
    time, event = _data()
    assert survival_metrics(time, event, np.full_like(time, 7.0))["c_index"] == 0.5
    assert survival_metrics(time, event, time)["c_index"] == 1.0
    assert survival_metrics(time, event, -time)["c_index"] == 0.0


def test_harrell_c_agrees_with_scikit_survival():
    time, event = _data()
    pred = time + np.random.default_rng(1).normal(0, 10, len(time))
    ours = survival_metrics(time, event, pred)["c_index"]
    ref = concordance_index_censored(event.astype(bool), time, -pred)[0]
    assert ours == pytest.approx(ref, abs=1e-12)


def test_mae_variants_by_hand():
    time = np.array([10.0, 20.0, 30.0, 40.0])
    event = np.array([1, 0, 1, 0])
    pred = np.array([12.0, 15.0, 25.0, 50.0])
    margin = np.array([10, 26, 30, 45])
    m = survival_metrics(time, event, pred, margin=margin)
    assert m["mae_uncensored"] == pytest.approx((2 + 5) / 2)
    assert m["mae_hinge"] == pytest.approx((5 + 0) / 2)
    assert m["mae_hinge_all"] == pytest.approx((2 + 5 + 5 + 0) / 4)
    assert m["mae_margin"] == pytest.approx((2 + 11 + 5 + 5) / 4)


def _peaked(bins, num_bins):
    logits = torch.full((len(bins), num_bins), -30.0)
    logits[torch.arange(len(bins)), torch.as_tensor(bins)] = 30.0
    return logits


def test_evaluator_over_batches_matches_one_call_and_extras_rank_good_curves_higher():
    rng = np.random.default_rng(0)
    n, num_bins = 300, 48
    time = rng.integers(1, 40, n)
    event = (rng.random(n) < 0.6).astype(int)
    ctx = BuildContext(
        data=DataFacts(task="survival", times=tuple(time.tolist()), events=tuple(event.tolist()))
    )
    good, flat = (
        SurvivalEvaluator(SurvivalEvaluatorParams(), ctx),
        SurvivalEvaluator(SurvivalEvaluatorParams(), ctx),
    )
    good_logits = _peaked(time, num_bins)
    flat_logits = torch.zeros(n, num_bins)
    for lo in range(0, n, 64):
        batch = {
            "time": torch.tensor(time[lo : lo + 64]).float(),
            "event": torch.tensor(event[lo : lo + 64]),
            "margin": torch.tensor(time[lo : lo + 64]),
        }
        good.update({"logits": good_logits[lo : lo + 64]}, batch)
        flat.update({"logits": flat_logits[lo : lo + 64]}, batch)
    g, f = good.compute(), flat.compute()
    pred = torch.softmax(good_logits, -1) @ torch.arange(num_bins).float()
    ref = survival_metrics(time, event, pred.numpy(), margin=time)
    for key in ("c_index", "mae_uncensored", "mae_hinge", "mae_margin"):
        assert g[key] == pytest.approx(ref[key], abs=1e-4)
    assert g["c_index"] > 0.97 and f["c_index"] == 0.5
    assert g["ibs"] < f["ibs"]
    assert g["mean_auc"] > 0.95 and f["mean_auc"] == pytest.approx(0.5)
    assert g["uno_c"] > 0.95
    assert good.is_higher_better("c_index") and not good.is_higher_better("ibs")
    good.train()
    good.eval()


def test_median_prediction_and_missing_margins():
    logits = _peaked([3, 7], 12)
    ev = SurvivalEvaluator(
        SurvivalEvaluatorParams(pred_method="median", extras=False), BuildContext()
    )
    ev.update({"logits": logits}, {"time": torch.tensor([3.0, 7.0]), "event": torch.tensor([1, 1])})
    out = ev.compute()
    assert out["mae_uncensored"] == 0.0
    assert next(iter(out)) == "mae_uncensored"
    assert "mae_margin" not in out and "ibs" not in out


def test_example_inputs_work():
    ev = SurvivalEvaluator(SurvivalEvaluatorParams(), BuildContext())
    outputs, batch = ev.example_inputs(BuildContext(data=DataFacts(task="survival")))
    ev.update(outputs, batch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ev.compute()
    assert 0 <= out["c_index"] <= 1
    assert {"uno_c", "ibs", "mean_auc", "mae_margin"} <= set(out)


def test_ibs_and_auc_equal_scikit_survival_on_unclipped_data_when_it_is_defined():
    from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score
    from sksurv.util import Surv

    rng = np.random.default_rng(4)
    n, num_bins = 200, 40
    train_t = np.concatenate([rng.integers(1, 35, n - 1), [39]])
    train_e = np.concatenate([rng.integers(0, 2, n - 1), [1]])
    time, event = rng.integers(1, 35, 150), rng.integers(0, 2, 150)
    logits = torch.randn(150, num_bins, generator=torch.Generator().manual_seed(0))
    surv = (1 - torch.softmax(logits, -1).cumsum(-1)).clamp_min(0).double().numpy()
    pred = surv.sum(1)
    ours = survival_metrics(time, event, pred, surv=surv, train=(train_t, train_e))
    lo, hi = np.quantile(time, (0.1, 0.9))
    grid = np.arange(max(np.ceil(lo), time.min() + 1), np.floor(min(hi, time.max() - 1)) + 1)
    tr = Surv.from_arrays(train_e.astype(bool), train_t.astype(float))
    te = Surv.from_arrays(event.astype(bool), time.astype(float))
    cols = grid.astype(int)
    assert ours["ibs"] == pytest.approx(integrated_brier_score(tr, te, surv[:, cols], grid))
    ref_auc = cumulative_dynamic_auc(tr, te, 1 - surv[:, cols], grid)[1]
    assert ours["mean_auc"] == pytest.approx(ref_auc)


def test_prediction_plot_is_written_atomically(tmp_path):
    from asklepios_unisurv.plots import plot_predictions

    time = np.array([2, 5, 9, 14, 20, 21.0])
    event = np.array([1, 0, 1, 1, 0, 1])
    logits = _peaked(time.astype(int), 24) * 0.1
    path = plot_predictions(logits, time, event, tmp_path / "pred.png", num_subjects=3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["pred.png"]
