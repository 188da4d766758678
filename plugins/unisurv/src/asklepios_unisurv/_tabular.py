"""Private helpers of the survival tables: time bins, stratified splits, train-only encoding."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from asklepios_sdk import ComponentError, DataFacts
from asklepios_sdk.components import Dataset

from asklepios_unisurv.params import SplitParams

__all__ = ["SurvivalSplit", "SurvivalTable", "to_bins"]


def to_bins(
    times: np.ndarray, unit: float, t_max: int, policy: str, where: str
) -> tuple[np.ndarray, float]:
    """Return integer bins ``floor(time / width)`` and the width, with the ``t_max`` check.

    ``policy='coarsen'`` multiplies ``unit`` by the smallest integer that puts every time below
    ``t_max``; ``'error'`` raises, naming the largest bin and the settings that would fit.
    """
    times = np.asarray(times, dtype=np.float64)
    if not np.isfinite(times).all() or (times < 0).any():
        raise ComponentError(f"{where}: survival times must be finite and non-negative")
    bins = np.floor(times / unit)
    if len(bins) == 0 or bins.max() < t_max:
        return bins, unit
    factor = math.floor(times.max() / unit / t_max) + 1
    while np.floor(times.max() / (unit * factor)) >= t_max:
        factor += 1
    if policy == "coarsen":
        return np.floor(times / (unit * factor)), unit * factor
    raise ComponentError(
        f"{where}: the largest time falls in bin {int(bins.max())}, but there are only t_max = "
        f"{t_max} bins (0..{t_max - 1}); set t_max: {int(bins.max()) + 1}, or too_long: coarsen "
        f"(bins {factor}x wider)"
    )


def split_rows(events: np.ndarray, p: SplitParams) -> dict[str, np.ndarray]:
    """Return stratified (by event) train/val/test row indices."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    rows = np.arange(len(events))
    strat = events if np.bincount(events.astype(int)).min(initial=len(events)) >= 2 else None
    if p.num_folds is not None:
        folds = StratifiedKFold(p.num_folds, shuffle=True, random_state=p.split_seed)
        rest, test = list(folds.split(rows, events))[p.fold]
    else:
        rest, test = train_test_split(
            rows, test_size=p.test_size, random_state=p.split_seed, stratify=strat
        )
    if p.val_size == 0:
        return {"train": np.sort(rest), "val": np.array([], dtype=int), "test": np.sort(test)}
    rest_strat = events[rest] if strat is not None else None
    train, val = train_test_split(
        rest, test_size=p.val_size, random_state=p.split_seed, stratify=rest_strat
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def encode(frame: pd.DataFrame, train_rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One-hot the categorical columns and standardise the numeric ones, fitted on train only.

    Missing values get the training median (numeric) or their own category (categorical).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    cats = frame[categorical].astype(object).where(frame[categorical].notna(), "<missing>")
    frame = pd.concat([frame[numeric], cats.astype(str)], axis=1)
    transformer = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical),
        ],
        verbose_feature_names_out=False,
    )
    transformer.fit(frame.iloc[train_rows])
    return transformer.transform(frame).astype(np.float32), list(
        transformer.get_feature_names_out()
    )


class SurvivalSplit(torch.utils.data.Dataset):
    """One split: features ``image`` ``(F,)``, bin ``time``, ``event`` (and ``longitudinal``)."""

    def __init__(
        self,
        features: np.ndarray,
        times: np.ndarray,
        events: np.ndarray,
        longitudinal: np.ndarray | None = None,
    ) -> None:
        self.features = torch.as_tensor(features, dtype=torch.float32)
        self.times = np.asarray(times, dtype=np.float64)
        self.events = np.asarray(events, dtype=np.int64)
        self._time = torch.as_tensor(self.times, dtype=torch.float32)
        self._event = torch.as_tensor(self.events)
        self.longitudinal = (
            None if longitudinal is None else torch.as_tensor(longitudinal, dtype=torch.float32)
        )

    def __len__(self) -> int:
        return len(self.times)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = {
            "image": self.features[index],
            "time": self._time[index],
            "event": self._event[index],
        }
        if self.longitudinal is not None:
            sample["longitudinal"] = self.longitudinal[index]
        return sample


class SurvivalTable(Dataset):
    """Survival data cut into stratified splits; facts from the training split.

    The base of ``unisurv.sksurv``, ``unisurv.csv`` and ``unisurv.synthetic``, which load their
    table and hand it here.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        raw_times: np.ndarray,
        events: np.ndarray,
        unit: float,
        params: SplitParams,
        where: str,
        longitudinal: np.ndarray | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> None:
        events = np.asarray(events).astype(np.int64)
        if not np.isin(events, [0, 1]).all():
            raise ComponentError(f"{where}: event indicators must be 0 (censored) or 1 (event)")
        bins, self.bin_width = to_bins(raw_times, unit, params.t_max, params.too_long, where)
        self.rows = split_rows(events, params)
        features, self.feature_names = encode(frame, self.rows["train"])
        self.t_max = params.t_max
        self.extras = dict(extras or {})
        self._splits = {
            name: SurvivalSplit(
                features[idx],
                bins[idx],
                events[idx],
                None if longitudinal is None else longitudinal[idx],
            )
            for name, idx in self.rows.items()
        }

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name not in self._splits:
            raise ComponentError(f"unknown split {name!r}; this dataset has {sorted(self._splits)}")
        return self._splits[name]

    def facts(self) -> DataFacts:
        train = self._splits["train"]
        return DataFacts(
            task="survival",
            num_samples=len(train),
            num_features=len(self.feature_names),
            times=tuple(train.times.tolist()),
            events=tuple(train.events.tolist()),
            extras={
                "t_max": self.t_max,
                "bin_width": self.bin_width,
                "feature_names": tuple(self.feature_names),
                **self.extras,
            },
        )


def check_columns(frame: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    """Raise naming the missing columns and the ones the table has."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ComponentError(
            f"{where}: columns {missing} are not in the table; it has {list(frame.columns)}"
        )
