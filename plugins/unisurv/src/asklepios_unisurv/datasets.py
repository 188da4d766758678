"""Survival datasets: scikit-survival's bundled sets, a user's CSV table, a synthetic generator.

Times are cut into integer bins (months by default: ``days // 30``, as UniSurv's MS pipeline);
every training time must fall below ``t_max``. Categorical covariates are one-hot encoded and
numeric ones standardised, both fitted on the training split only. Samples carry ``image``
(static features), ``time`` (bin), ``event`` and, for longitudinal CSV data, ``longitudinal``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from asklepios_sdk import BuildContext, ComponentError

from asklepios_unisurv._tabular import SurvivalTable, check_columns
from asklepios_unisurv.params import (
    CSVDatasetParams,
    SksurvDatasetParams,
    SyntheticDatasetParams,
)

__all__ = [
    "CSVDataset",
    "SksurvDataset",
    "SyntheticDataset",
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


class SksurvDataset(SurvivalTable):
    """Load GBSG2, WHAS500, veterans, AIDS or flchain from scikit-survival, in time bins."""

    def __init__(self, params: SksurvDatasetParams, ctx: BuildContext) -> None:
        del ctx
        frame, times, events = load_sksurv(params.name)
        super().__init__(
            frame,
            times,
            events,
            params.days_per_bin,
            params,
            f"unisurv.sksurv[{params.name}]",
            extras={"dataset": params.name},
        )


class CSVDataset(SurvivalTable):
    """Load a user's survival table (static columns, optional longitudinal array) from CSV."""

    def __init__(self, params: CSVDatasetParams, ctx: BuildContext) -> None:
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
            raise ComponentError(
                f"{where}: the table has no covariate columns besides time and event"
            )
        super().__init__(
            frame[features],
            frame[params.time_column].to_numpy(float),
            frame[params.event_column].to_numpy(),
            params.time_per_bin,
            params,
            where,
            longitudinal=_load_longitudinal(params, len(frame), where),
        )


def _load_longitudinal(params: CSVDatasetParams, rows: int, where: str) -> np.ndarray | None:
    """Return the ``(N, C, t_max, W)`` array of ``longitudinal_path`` (None without one)."""
    if params.longitudinal_path is None:
        return None
    longitudinal = np.load(Path(params.longitudinal_path).expanduser(), allow_pickle=False)
    if longitudinal.ndim != 4 or len(longitudinal) != rows:
        raise ComponentError(
            f"{where}: longitudinal array must have shape (N={rows}, C, t_max, W), "
            f"got {longitudinal.shape}"
        )
    if longitudinal.shape[2] != params.t_max:
        raise ComponentError(
            f"{where}: longitudinal array has {longitudinal.shape[2]} time rows, "
            f"t_max is {params.t_max}"
        )
    return longitudinal


def synthetic_lognormal(p: SyntheticDatasetParams) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
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


class SyntheticDataset(SurvivalTable):
    """Generate discretised-lognormal survival data with random right censoring."""

    def __init__(self, params: SyntheticDatasetParams, ctx: BuildContext) -> None:
        del ctx
        frame, times, events = synthetic_lognormal(params)
        super().__init__(frame, times, events, 1.0, params, "unisurv.synthetic")
