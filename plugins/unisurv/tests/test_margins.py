"""KM margin targets and weights against an independent numpy Kaplan–Meier (spec §3.2, §6.1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from asklepios_sdk.components import Dataset
from asklepios_unisurv.margins import KMMarginWrapper, fit_km, margin_targets
from asklepios_unisurv.params import KMMarginWrapperParams
from lifelines import KaplanMeierFitter
from sklearn.utils import resample


def _wrapper(**params):
    return KMMarginWrapper(KMMarginWrapperParams(**params), BuildContext())


def _numpy_km(t, d):
    """Product-limit estimate on [0, distinct times]; censored at t still at risk at t."""
    t = np.asarray(t, dtype=float)
    d = np.asarray(d, dtype=int)
    grid = np.unique(np.concatenate([[0.0], t]))
    at_risk = np.array([(t >= g).sum() for g in grid])
    deaths = np.array([((t == g) & (d == 1)).sum() for g in grid])
    return grid, np.cumprod(1.0 - deaths / at_risk)


def _numpy_margins(t, d):
    grid, surv = _numpy_km(t, d)
    area = np.zeros_like(surv)
    for m in range(len(grid) - 2, -1, -1):
        area[m] = area[m + 1] + (grid[m + 1] - grid[m]) * (surv[m] + surv[m + 1]) / 2
    pos = np.searchsorted(grid, np.asarray(t, float))
    s_t, a_t = surv[pos], area[pos]
    raw = np.array(
        [ti if di == 1 else ti + a / s for ti, di, a, s in zip(t, d, a_t, s_t, strict=True)]
    )
    weight = np.where(np.asarray(d) == 1, 1.0, 1.0 - s_t)
    return raw, weight


def _months(loader_name):
    import sksurv.datasets as ds

    loaders = {
        "veterans": (ds.load_veterans_lung_cancer, "Status", "Survival_in_days"),
        "gbsg2": (ds.load_gbsg2, "cens", "time"),
        "whas500": (ds.load_whas500, "fstat", "lenfol"),
    }
    fn, event_key, time_key = loaders[loader_name]
    _, y = fn()
    return (y[time_key] // 30).astype(float), y[event_key].astype(int)


def test_numpy_km_agrees_with_lifelines():
    t, d = _months("gbsg2")
    grid, surv = _numpy_km(t, d)
    kmf = KaplanMeierFitter().fit(t, d)
    np.testing.assert_allclose(kmf.survival_function_.index.to_numpy(), grid)
    np.testing.assert_allclose(kmf.survival_function_.iloc[:, 0].to_numpy(), surv, atol=1e-12)


def test_toy_example_is_exact():
    t, d = np.array([1, 2, 3, 4, 5.0]), np.array([1, 0, 1, 0, 1])
    curve = fit_km(t, d)
    np.testing.assert_allclose(curve.survival, [1, 0.8, 0.8, 8 / 15, 8 / 15, 0], atol=1e-12)
    raw, margin, weight = margin_targets(t, d, curve)
    np.testing.assert_allclose(raw, [1, 2 + 1.4666666667 / 0.8, 3, 4.5, 5], atol=1e-9)
    assert raw[1] == pytest.approx(3.8333333, abs=1e-6)
    np.testing.assert_array_equal(margin, [1, 3, 3, 4, 5])
    np.testing.assert_allclose(weight, [1, 0.2, 1, 1 - 8 / 15, 1], atol=1e-9)


def test_veterans_censored_margins_and_weights_match():
    t, d = _months("veterans")
    raw, margin, weight = margin_targets(t, d, fit_km(t, d))
    ref_raw, ref_weight = _numpy_margins(t, d)
    censored = d == 0
    assert sorted(set(t[censored].astype(int))) == [0, 2, 3, 4, 6, 7]
    np.testing.assert_allclose(raw[censored], ref_raw[censored], atol=1e-4)
    np.testing.assert_allclose(weight, ref_weight, atol=1e-4)
    np.testing.assert_array_equal(margin[~censored], t[~censored].astype(int))


def test_gbsg2_means_match_and_are_finite():
    t, d = _months("gbsg2")
    raw, margin, weight = margin_targets(t, d, fit_km(t, d))
    ref_raw, ref_weight = _numpy_margins(t, d)
    c = d == 0
    assert raw[c].mean() == pytest.approx(ref_raw[c].mean(), abs=1e-4)
    assert margin[c].mean() == pytest.approx(np.floor(ref_raw[c]).mean(), abs=1e-4)
    assert weight[c].mean() == pytest.approx(ref_weight[c].mean(), abs=1e-4)
    assert np.isfinite(raw).all() and np.isfinite(weight).all()
    assert margin.max() <= t.max()


@pytest.mark.parametrize("name", ["whas500", "veterans"])
def test_events_where_km_reaches_zero_keep_their_own_time(name):
    t, d = _months(name)
    curve = fit_km(t, d)
    assert curve.survival[-1] == 0.0
    last_events = (t == t.max()) & (d == 1)
    assert last_events.any()
    with np.errstate(invalid="ignore", divide="ignore"):
        naive = t + curve.tail_at(t) / curve.survival_at(t)
    assert not np.isfinite(naive[last_events]).all()
    raw, margin, weight = margin_targets(t, d, curve)
    assert np.isfinite(raw).all() and np.isfinite(weight).all()
    np.testing.assert_array_equal(margin[last_events], t[last_events].astype(int))


def test_linear_extension_reaches_zero_along_the_line():
    t, d = np.array([1, 2, 3, 4, 5.0]), np.array([1, 0, 0, 0, 0])
    curve = fit_km(t, d, "Linearext")
    assert curve.timeline[-1] == pytest.approx(5 / (1 - 0.8))
    assert curve.survival[-1] == 0.0
    ext = curve.timeline > 5
    np.testing.assert_allclose(curve.survival[ext], 1 - 0.2 / 5 * curve.timeline[ext], atol=1e-12)
    # round(20 / 1) = 20 points from 5 to 25, so 19 equal steps of 20/19 (not the mean spacing 1)
    np.testing.assert_allclose(np.diff(curve.timeline[curve.timeline >= 5]), 20 / 19)


def _reference_extension(timeline, surv):
    """UniSurv ``KMLinearExt(how='Linearext')``, transcribed from its description."""
    slope = (1 - surv[-1]) / (0 - timeline[-1])
    zero = -1 / slope
    points = np.linspace(
        timeline[-1], zero, round((zero - timeline[-1]) / np.diff(timeline).mean())
    )
    return (
        np.concatenate([timeline, points[1:]]),
        np.concatenate([surv, np.maximum(1 + points * slope, 0)[1:]]),
    )


@pytest.mark.parametrize(
    ("t", "d", "points"),
    [
        ([1, 2, 3, 4, 5], [1, 0, 0, 0, 0], 20),
        ([1, 2, 2, 3, 5, 8], [1, 1, 0, 1, 0, 0], 4),
        ([1, 1, 2, 2, 3, 3, 4, 4, 5, 5], [1] * 9 + [0], 1),  # extension under 1.5 steps: none
        ([1] * 3 + [2] * 3 + [3] * 3 + [4] * 3 + [5] * 11, [1] * 22 + [0], 0),  # (original: fails)
    ],
)
def test_linear_extension_matches_the_original_grid(t, d, points):
    t, d = np.asarray(t, dtype=float), np.asarray(d)
    kmf = KaplanMeierFitter().fit(t, d)
    timeline = kmf.survival_function_.index.to_numpy(dtype=float)
    surv = kmf.survival_function_.iloc[:, 0].to_numpy()
    zero = timeline[-1] / (1 - surv[-1])
    assert round((zero - timeline[-1]) / np.diff(timeline).mean()) == points
    want_t, want_s = _reference_extension(timeline, surv)
    curve = fit_km(t, d, "Linearext")
    np.testing.assert_allclose(curve.timeline, want_t, rtol=1e-12)
    np.testing.assert_allclose(curve.survival, want_s, rtol=1e-12, atol=1e-15)
    slots = np.diff(want_t) * (want_s[:-1] + want_s[1:]) / 2  # the original's trapezoid tails
    want_tail = np.concatenate([np.cumsum(slots[::-1])[::-1], [0.0]])
    np.testing.assert_allclose(curve.tail, want_tail, rtol=1e-12, atol=1e-12)
    if points <= 1:  # no short last segment: the curve ends at tau_M, above 0
        assert len(curve.timeline) == len(timeline) and curve.survival[-1] > 0


class _Table(Dataset):
    def __init__(self, splits):
        self.splits = splits

    def split(self, name):
        t, d = self.splits[name]
        rows = [
            {"time": torch.tensor(a), "event": torch.tensor(b)} for a, b in zip(t, d, strict=True)
        ]
        return rows

    def facts(self):
        t, d = self.splits["train"]
        return DataFacts(task="survival", times=tuple(t), events=tuple(d), extras={"t_max": 96})


def test_wrapper_uses_the_training_curve_for_every_split():
    t, d = _months("gbsg2")
    data = _Table({"train": (t[:500], d[:500]), "val": (t[500:], d[500:])})
    wrapper = _wrapper().wrap(data)
    val = wrapper.split("val")
    _, margin, weight = margin_targets(t[500:], d[500:], fit_km(t[:500], d[:500]))
    assert int(val[3]["margin"]) == margin[3]
    np.testing.assert_allclose(val.weight.numpy(), weight, atol=1e-6)
    assert set(val[0]) == {"time", "event", "margin", "weight"}


def test_faithful_flag_refits_per_split_on_the_upsampled_training_rows():
    t, d = _months("gbsg2")
    data = _Table({"train": (t[:500], d[:500]), "val": (t[500:], d[500:])})
    wrapper = _wrapper(km_fit="per_split_upsampled").wrap(data)
    tr, dr = t[:500], d[:500]
    ups = resample(
        np.flatnonzero(dr == 1), replace=True, n_samples=int((dr == 0).sum()), random_state=42
    )
    rows = np.concatenate([np.flatnonzero(dr == 0), ups])
    ref_raw, ref_w = _numpy_margins(tr[rows], dr[rows])
    train = wrapper.split("train")
    first = {int(r): i for i, r in enumerate(rows)}
    idx = np.array(sorted(first))
    np.testing.assert_allclose(train.raw_margin[idx], ref_raw[[first[i] for i in idx]], atol=1e-6)
    np.testing.assert_allclose(train.weight.numpy()[idx], ref_w[[first[i] for i in idx]], atol=1e-6)
    val_raw, _ = _numpy_margins(t[500:], d[500:])
    np.testing.assert_allclose(wrapper.split("val").raw_margin, val_raw, atol=1e-6)


def test_wrapper_rejects_non_survival_data_and_margins_beyond_t_max():
    class _NoSurv(_Table):
        def facts(self):
            return DataFacts(task="classification")

    with pytest.raises(ComponentError, match="survival"):
        _wrapper().wrap(_NoSurv({}))

    class _Short(_Table):
        def facts(self):
            return super().facts().replace(extras={"t_max": 4})

    wrapper = _wrapper().wrap(_Short({"train": (np.array([1, 2, 5.0]), np.array([1, 0, 1]))}))
    with pytest.raises(ComponentError, match="t_max"):
        wrapper.split("train")


def test_tail_between_timeline_points_is_the_area_under_the_interpolated_curve():
    t, d = _months("gbsg2")
    curve = fit_km(t[:400], d[:400])
    queries = np.array([0.5, 3.25, 17.5, 40.9, 86.0, 200.0])
    fine = np.linspace(0, curve.timeline[-1], 200_001)
    line = np.interp(fine, curve.timeline, curve.survival)
    expected = [np.trapezoid(line[fine >= q], fine[fine >= q]) for q in queries]
    np.testing.assert_allclose(curve.tail_at(queries), expected, atol=2e-3)
    steps = [curve.survival[curve.timeline <= q][-1] for q in queries]
    np.testing.assert_allclose(curve.survival_at(queries), steps)
