"""Kaplan–Meier margin targets and confidence weights (``unisurv.km_margin``).

A censored subject's target is its Kaplan–Meier "best guess" time, the censoring time plus the mean
residual life of the population curve (the MAE-margin of Haider et al., JMLR 2020); its weight is
``1 - S_KM(t)``. UniSurv ``modules/mae_margin.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.components import Dataset, DatasetWrapper

from asklepios_unisurv._balance import balanced_indices
from asklepios_unisurv.params import KMMarginWrapperParams

__all__ = [
    "KMCurve",
    "KMMarginWrapper",
    "fit_km",
    "margin_targets",
    "split_survival",
]


@dataclass(frozen=True)
class KMCurve:
    """A Kaplan–Meier curve on its timeline ``0 = tau_0 < ... < tau_M`` and its trapezoid tails."""

    timeline: np.ndarray
    survival: np.ndarray
    tail: np.ndarray

    def survival_at(self, times: np.ndarray) -> np.ndarray:
        """Return the step-function value ``S(t)`` (1 before the first point of the timeline)."""
        pos = np.searchsorted(self.timeline, times, side="right") - 1
        return np.where(pos >= 0, self.survival[np.clip(pos, 0, None)], 1.0)

    def tail_at(self, times: np.ndarray) -> np.ndarray:
        """Return ``A(t)``: the area under the linear interpolation of the curve from ``t`` on.

        At timeline points this is the trapezoid sum of the original; past ``tau_M`` it is 0.
        """
        times = np.asarray(times, dtype=np.float64)
        last = len(self.timeline) - 1
        nxt = np.clip(np.searchsorted(self.timeline, times, side="left"), 0, last)
        s_lin = np.interp(times, self.timeline, self.survival)
        part = (self.timeline[nxt] - times) * (s_lin + self.survival[nxt]) / 2.0
        return np.where(times >= self.timeline[-1], 0.0, self.tail[nxt] + np.maximum(part, 0.0))


def _tails(timeline: np.ndarray, survival: np.ndarray) -> np.ndarray:
    pieces = np.diff(timeline) * (survival[:-1] + survival[1:]) / 2.0
    return np.concatenate([np.cumsum(pieces[::-1])[::-1], [0.0]])


def fit_km(
    times: np.ndarray, events: np.ndarray, how: Literal["toTmax", "Linearext"] = "toTmax"
) -> KMCurve:
    """Fit Kaplan–Meier with lifelines and attach the trapezoid tail areas.

    ``toTmax`` stops at the largest observed time. ``Linearext`` first extends the curve along the
    line through ``(0, 1)`` and ``(tau_M, S(tau_M))`` down to 0 at ``z``, on ``n - 1`` equal steps
    from ``tau_M`` to ``z`` with ``n = round((z - tau_M) / mean spacing of the timeline)`` (UniSurv
    ``KMLinearExt``); with ``n <= 1`` the curve is not extended, as in the original (whose
    ``n = 0`` case fails an assertion). A curve already at 0 (or still at 1) is not extended.
    """
    from lifelines import KaplanMeierFitter

    times = np.asarray(times, dtype=np.float64).reshape(-1)
    events = np.asarray(events).astype(bool).reshape(-1)
    if len(times) == 0:
        raise ComponentError("cannot fit Kaplan–Meier on an empty split")
    kmf = KaplanMeierFitter().fit(times, events)
    timeline = kmf.survival_function_.index.to_numpy(dtype=np.float64)
    survival = kmf.survival_function_.iloc[:, 0].to_numpy(dtype=np.float64)
    if how == "Linearext":
        timeline, survival = _linear_extension(timeline, survival)
    elif how != "toTmax":
        raise ComponentError(f"how must be 'toTmax' or 'Linearext', got {how!r}")
    return KMCurve(timeline, survival, _tails(timeline, survival))


def _linear_extension(timeline: np.ndarray, survival: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    last_t, last_s = float(timeline[-1]), float(survival[-1])
    if last_s <= 0.0 or last_s >= 1.0 or last_t <= 0.0 or len(timeline) < 2:
        return timeline, survival
    slope = (last_s - 1.0) / last_t
    zero_at = -1.0 / slope
    points = round((zero_at - last_t) / float(np.mean(np.diff(timeline))))
    if points <= 1:  # the original's linspace then holds tau_M alone: no extension
        return timeline, survival
    ext_t = np.linspace(last_t, zero_at, points)[1:]
    ext_s = np.maximum(1.0 + slope * ext_t, 0.0)
    return np.concatenate([timeline, ext_t]), np.concatenate([survival, ext_s])


def margin_targets(
    times: np.ndarray, events: np.ndarray, curve: KMCurve
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(raw margin, integer margin, weight)`` of every subject.

    ``e_i = t_i + (1 - d_i) A(t_i) / S(t_i)`` truncated to an integer, ``w_i = d_i + (1 - d_i)
    (1 - S(t_i))``. Subjects with an event keep ``e_i = t_i`` even where ``S(t_i) = 0`` (the
    original computes ``0 * 0 / 0 = NaN`` there). A censored subject with ``S(t_i) = 0`` (possible
    only when the curve comes from another split) also gets ``e_i = t_i``.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    events = np.asarray(events).astype(np.int64).reshape(-1)
    surv = curve.survival_at(times)
    tail = curve.tail_at(times)
    censored = (events == 0) & (surv > 0)
    residual = np.divide(tail, surv, out=np.zeros_like(tail), where=censored)
    raw = times + residual
    weight = np.where(events == 1, 1.0, 1.0 - surv)
    return raw, raw.astype(np.int64), weight


def split_survival(split: torch.utils.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(times, events)`` of a split: its ``times``/``events`` arrays, else read samples."""
    if hasattr(split, "times") and hasattr(split, "events"):
        return np.asarray(split.times, dtype=np.float64), np.asarray(split.events, dtype=np.int64)
    samples = [split[i] for i in range(len(split))]  # type: ignore[arg-type]
    try:
        times = np.array([float(s["time"]) for s in samples], dtype=np.float64)
        events = np.array([int(s["event"]) for s in samples], dtype=np.int64)
    except KeyError as err:
        raise ComponentError(
            f"unisurv.km_margin needs 'time' and 'event' in every sample, missing {err}; "
            "wrap a survival dataset"
        ) from err
    return times, events


class _MarginSplit(torch.utils.data.Dataset):
    def __init__(self, inner: Any, times: np.ndarray, events: np.ndarray, curve: KMCurve) -> None:
        self.inner = inner
        self.times = times
        self.events = events
        self.raw_margin, margin, weight = margin_targets(times, events, curve)
        self.margin = torch.as_tensor(margin, dtype=torch.int64)
        self.weight = torch.as_tensor(weight, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.inner[index])
        sample["margin"] = self.margin[index]
        sample["weight"] = self.weight[index]
        return sample


class KMMarginWrapper(DatasetWrapper):
    """Wrap a survival dataset with Kaplan–Meier margin targets and confidence weights.

    Every sample gains ``margin`` (the integer target bin) and ``weight``. :meth:`wrap` fits the
    training curve from the inner dataset's facts; ``km_fit`` says whether val/test reuse it.
    """

    def __init__(self, params: KMMarginWrapperParams, ctx: BuildContext) -> None:
        del ctx
        self.params = params
        self.curve: KMCurve | None = None

    def wrap(self, inner: Dataset) -> Dataset:
        super().wrap(inner)
        facts = inner.facts()
        if facts.times is None or facts.events is None:
            raise ComponentError(
                "unisurv.km_margin wraps survival datasets only: the inner dataset's facts carry "
                "no training times/events (DataFacts(task='survival', times=..., events=...))"
            )
        times = np.asarray(facts.times, dtype=np.float64)
        events = np.asarray(facts.events, dtype=np.int64)
        if self.params.km_fit == "per_split_upsampled":
            rows = balanced_indices(events, "events", self.params.seed)
            times, events = times[rows], events[rows]
        self.curve = fit_km(times, events, self.params.how)
        return self

    def _curve_for(self, name: str, times: np.ndarray, events: np.ndarray) -> KMCurve:
        assert self.curve is not None
        if self.params.km_fit == "train" or name == "train":
            return self.curve
        return fit_km(times, events, self.params.how)

    def split(self, name: str) -> torch.utils.data.Dataset:
        if self.curve is None:
            raise ComponentError("unisurv.km_margin: call wrap(inner) before split()")
        inner = self.inner.split(name)
        times, events = split_survival(inner)
        result = _MarginSplit(inner, times, events, self._curve_for(name, times, events))
        t_max = self.inner.facts().extras.get("t_max")
        if t_max is not None and len(result.margin) and int(result.margin.max()) >= int(t_max):
            raise ComponentError(
                f"unisurv.km_margin: split {name!r} has margin targets up to "
                f"{int(result.margin.max())}, outside the {t_max} time bins (0..{int(t_max) - 1}); "
                "raise the dataset's t_max or use coarser bins"
            )
        return result
