"""Survival datasets: scikit-survival's bundled sets, a user's CSV table, a synthetic generator.

Times are cut into integer bins (months by default: ``days // 30``, as UniSurv's MS pipeline);
every training time must fall below ``t_max``. Categorical covariates are one-hot encoded and
numeric ones standardised, both fitted on the training split only. Samples carry ``image``
(static features), ``time`` (bin), ``event`` and, for longitudinal CSV data, ``longitudinal``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from asklepios_sdk import BuildContext, ComponentError
from pydantic import Field

from asklepios_unisurv._tabular import SplitParams, SurvivalTable, check_columns

__all__ = [
    "CSVParams",
    "SksurvParams",
    "SyntheticParams",
    "build_csv",
    "build_sksurv",
    "build_synthetic",
    "load_sksurv",
    "synthetic_lognormal",
]

_SKSURV = {
    "gbsg2": ("load_gbsg2", "cens", "time"),
    "whas500": ("load_whas500", "fstat", "lenfol"),
    "veterans": ("load_veterans_lung_cancer", "Status", "Survival_in_days"),
    "aids": ("load_aids", "censor", "time"),
    "flchain": ("load_flchain", "death", "futime"),
}


class SksurvParams(SplitParams):
    """Which scikit-survival dataset, its time unit, bins and splits."""

    name: Literal["gbsg2", "whas500", "veterans", "aids", "flchain"] = Field(
        "gbsg2", description="Dataset bundled with scikit-survival."
    )
    days_per_bin: float = Field(30.0, gt=0, description="Days per time bin (30: months).")


def load_sksurv(name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Return ``(covariates, times in days, events)`` of a scikit-survival dataset."""
    import sksurv.datasets

    if name not in _SKSURV:
        raise ComponentError(
            f"unknown scikit-survival dataset {name!r}; choose from {list(_SKSURV)}"
        )
    loader, event_key, time_key = _SKSURV[name]
    frame, target = getattr(sksurv.datasets, loader)()
    return frame, np.asarray(target[time_key], float), np.asarray(target[event_key], int)


def build_sksurv(params: SksurvParams, ctx: BuildContext) -> SurvivalTable:
    """Load GBSG2, WHAS500, veterans, AIDS or flchain from scikit-survival, in time bins."""
    del ctx
    frame, times, events = load_sksurv(params.name)
    return SurvivalTable(
        frame,
        times,
        events,
        params.days_per_bin,
        params,
        f"unisurv.sksurv[{params.name}]",
        extras={"dataset": params.name},
    )


class CSVParams(SplitParams):
    """Where a user's survival table lives and which columns mean what."""

    path: str = Field(description="CSV file, one row per subject.")
    time_column: str = Field("time", description="Observed time (event or censoring).")
    event_column: str = Field("event", description="1 = event, 0 = right-censored.")
    feature_columns: list[str] | None = Field(
        None, description="Static covariates; default: every other column."
    )
    time_per_bin: float = Field(
        1.0, gt=0, description="Time units per bin (e.g. 30 for days -> months)."
    )
    longitudinal_path: str | None = Field(
        None,
        description="Optional .npy array (N, C, t_max, W) of longitudinal measurements aligned "
        "with the rows (for the transformer's chunk-CNN branch).",
    )


def build_csv(params: CSVParams, ctx: BuildContext) -> SurvivalTable:
    """Load a user's survival table (static columns, optional longitudinal array) from CSV."""
    del ctx
    where = f"unisurv.csv[{params.path}]"
    path = Path(params.path).expanduser()
    if not path.is_file():
        raise ComponentError(f"{where}: no such file {str(path)!r}; check data.dataset.path")
    frame = pd.read_csv(path)
    check_columns(frame, [params.time_column, params.event_column], where)
    features = params.feature_columns or [
        c for c in frame.columns if c not in (params.time_column, params.event_column)
    ]
    check_columns(frame, features, where)
    if not features:
        raise ComponentError(f"{where}: the table has no covariate columns besides time and event")
    longitudinal = None
    if params.longitudinal_path is not None:
        longitudinal = np.load(Path(params.longitudinal_path).expanduser(), allow_pickle=False)
        if longitudinal.ndim != 4 or len(longitudinal) != len(frame):
            raise ComponentError(
                f"{where}: longitudinal array must have shape (N={len(frame)}, C, t_max, W), "
                f"got {longitudinal.shape}"
            )
        if longitudinal.shape[2] != params.t_max:
            raise ComponentError(
                f"{where}: longitudinal array has {longitudinal.shape[2]} time rows, "
                f"t_max is {params.t_max}"
            )
    return SurvivalTable(
        frame[features],
        frame[params.time_column].to_numpy(float),
        frame[params.event_column].to_numpy(),
        params.time_per_bin,
        params,
        where,
        longitudinal=longitudinal,
    )


class SyntheticParams(SplitParams):
    """Size and shape of the discretised-lognormal generator."""

    t_max: int = Field(48, ge=2, description="Number of monthly bins.")
    num_samples: int = Field(1000, ge=20, description="Subjects.")
    num_features: int = Field(3, ge=1, le=5, description="Covariates that move the location.")
    censoring: float = Field(0.5, ge=0, lt=1, description="Probability of random censoring.")
    sigma: float = Field(0.4, gt=0, description="Scale of log time.")
    seed: int = Field(0, description="Generator seed.")


def synthetic_lognormal(p: SyntheticParams) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Draw covariates, lognormal event times and random right censoring.

    ``log T = log(t_max / 4) + 0.5 * (x @ beta) + sigma * eps`` with ``beta`` alternating
    ``+-1 / sqrt(F)``; a subject is censored with probability ``censoring`` at a uniform fraction
    of its event time; times past the horizon are censored at ``t_max - 1`` (administrative).
    """
    rng = np.random.default_rng(p.seed)
    x = rng.standard_normal((p.num_samples, p.num_features))
    beta = np.where(np.arange(p.num_features) % 2 == 0, 1.0, -1.0) / np.sqrt(p.num_features)
    log_t = np.log(p.t_max / 4) + 0.5 * (x @ beta) + p.sigma * rng.standard_normal(p.num_samples)
    event_time = np.exp(log_t)
    censored = rng.random(p.num_samples) < p.censoring
    observed = np.where(censored, event_time * rng.random(p.num_samples), event_time)
    events = (~censored).astype(int)
    late = observed >= p.t_max - 1
    observed = np.where(late, p.t_max - 1, observed)
    events = np.where(late, 0, events)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(p.num_features)])
    return frame, observed, events


def build_synthetic(params: SyntheticParams, ctx: BuildContext) -> SurvivalTable:
    """Generate discretised-lognormal survival data with random right censoring."""
    del ctx
    frame, times, events = synthetic_lognormal(params)
    return SurvivalTable(frame, times, events, 1.0, params, "unisurv.synthetic")
