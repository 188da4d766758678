"""Survival evaluator of UniSurv (``unisurv.survival``), on the predicted density's time.

The repo's metrics (UniSurv ``modules/evaluate.py``): Harrell's C on the predicted time
``y_hat = sum_k S(k)`` (lifelines, ties 0.5), MAE on uncensored subjects, the censored-only hinge
MAE and MAE-margin. Extras not in the repo, labelled as such: Haider et al.'s all-subject hinge MAE,
Uno's C, the integrated Brier score and the mean cumulative/dynamic AUC (scikit-survival), and
Antolini's time-dependent C (written here: neither lifelines nor scikit-survival has it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from asklepios_sdk import AsklepiosWarning, BuildContext
from asklepios_sdk.components import Batch, Evaluator, example_batch
from torch import Tensor

from asklepios_unisurv._functional import as_logits, predict_time, survival_curve
from asklepios_unisurv.params import SurvivalEvaluatorParams

__all__ = ["SurvivalEvaluator", "antolini_c", "survival_metrics"]


def _safe(name: str, fn: Callable[[], float]) -> float:
    try:
        return float(fn())
    except (ValueError, ZeroDivisionError) as err:
        warnings.warn(
            f"unisurv.survival: {name} is undefined here ({err})", AsklepiosWarning, stacklevel=3
        )
        return float("nan")


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def antolini_c(time: np.ndarray, event: np.ndarray, surv: np.ndarray) -> float:
    """Compute Antolini's time-dependent concordance of survival curves on integer time bins.

    ``C_td = P(S_i(t_i) < S_j(t_i) | i comparable with j)`` (Antolini, Boracchi & Biganzoli,
    Stat. Med. 2005), estimated as the share of concordant pairs among comparable ones: subject
    ``i`` has an event at ``t_i`` and ``j`` is still at risk after it (``t_j > t_i``, or
    ``t_j = t_i`` and ``j`` censored); the pair is concordant when ``i``'s predicted survival at
    ``t_i`` is strictly below ``j``'s at the same time. Ties in predicted survival count as
    discordant, as in the definition (so identical curves give 0, not 0.5); with curves that never
    cross and no tied times it equals Harrell's C. Neither lifelines nor scikit-survival
    implements it (pycox's ``EvalSurv.concordance_td('antolini')`` does, with the same pair
    rules); this is written from the definition, one vectorised pass per distinct event time.

    Args:
        time: observed times as bin indices ``0..T_max-1`` (later times use the last bin).
        event: 1 = event, 0 = censored.
        surv: survival curves ``S_i(k)``, shape ``(n, T_max)``.

    Returns:
        The concordance in ``[0, 1]``.

    Raises:
        ValueError: no comparable pair (no event before another subject's time).
    """
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event).astype(bool)
    surv = np.asarray(surv, dtype=np.float64)
    if surv.ndim != 2 or len(surv) != len(time) or len(event) != len(time):
        raise ValueError(
            f"antolini_c needs surv (n, T_max) with n = len(time) = len(event), got surv "
            f"{surv.shape}, time {time.shape}, event {event.shape}"
        )
    concordant = comparable = 0
    for tau in np.unique(time[event]):
        column = surv[:, min(int(tau), surv.shape[1] - 1)]
        cases = event & (time == tau)
        controls = np.sort(column[(time > tau) | ((time == tau) & ~event)])
        above = len(controls) - np.searchsorted(controls, column[cases], side="right")
        concordant += int(above.sum())
        comparable += int(cases.sum()) * len(controls)
    if comparable == 0:
        raise ValueError("no comparable pair: no event happens before another subject's time")
    return concordant / comparable


def survival_metrics(
    time: np.ndarray,
    event: np.ndarray,
    predicted: np.ndarray,
    surv: np.ndarray | None = None,
    margin: np.ndarray | None = None,
    train: tuple[np.ndarray, np.ndarray] | None = None,
    quantiles: tuple[float, float] = (0.1, 0.9),
) -> dict[str, float]:
    """Compute the survival metrics of predicted times (and curves) against observed data.

    Args:
        time: observed times (bins); event: 1 = event, 0 = censored.
        predicted: predicted event time per subject (larger = lower risk).
        surv: survival curves ``S_i(k)`` on bins ``0..T_max-1``, for IBS and AUC.
        margin: KM margin targets, for MAE-margin.
        train: ``(times, events)`` of the training split: the censoring distribution of the IPCW
            metrics (default: the evaluated data themselves).
        quantiles: the IBS/AUC time grid covers these quantiles of ``time``.

    Returns:
        ``mae_uncensored`` (MAE-U, first: the default checkpoint criterion), ``c_index``
        (Harrell), ``mae_hinge`` (censored only, as the repo), ``mae_hinge_all`` (Haider:
        absolute error for events, hinge for censored), ``mae_margin`` when margins are given;
        with ``surv``: ``uno_c``, ``ibs``, ``mean_auc``, ``antolini_c``.
    """
    from lifelines.utils import concordance_index

    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event).astype(bool)
    predicted = np.asarray(predicted, dtype=np.float64)
    hinge = np.maximum(time - predicted, 0.0)
    absolute = np.abs(time - predicted)
    # MAE-U comes first: the engine monitors the first key by default, and the original selects
    # checkpoints by validation MAE-U.
    out = {
        "mae_uncensored": _mean(absolute[event]),
        "c_index": _safe("c_index", lambda: concordance_index(time, predicted, event)),
        "mae_hinge": _mean(hinge[~event]),
        "mae_hinge_all": _mean(np.where(event, absolute, hinge)),
    }
    if margin is not None:
        out["mae_margin"] = _mean(np.abs(np.asarray(margin, dtype=np.float64) - predicted))
    if surv is not None:
        out.update(_ipcw_metrics(time, event, predicted, surv, train, quantiles))
        out["antolini_c"] = _safe("antolini_c", lambda: antolini_c(time, event, surv))
    return out


def _ipcw_metrics(
    time: np.ndarray,
    event: np.ndarray,
    predicted: np.ndarray,
    surv: np.ndarray,
    train: tuple[np.ndarray, np.ndarray] | None,
    quantiles: tuple[float, float],
) -> dict[str, float]:
    from sksurv.metrics import (
        concordance_index_ipcw,
        cumulative_dynamic_auc,
        integrated_brier_score,
    )
    from sksurv.util import Surv

    test_y = Surv.from_arrays(event, time)
    train_t, train_e = (time, event) if train is None else (np.asarray(train[0]), train[1])
    train_y = Surv.from_arrays(np.asarray(train_e).astype(bool), np.asarray(train_t, float))
    lo, hi = np.quantile(time, quantiles)
    upper = min(hi, float(np.max(train_t)) - 1, surv.shape[1] - 1, float(time.max()) - 1)
    grid = np.arange(max(np.ceil(lo), float(time.min()) + 1, 1.0), np.floor(upper) + 1)
    out = {
        "uno_c": _safe(
            "uno_c",
            lambda: concordance_index_ipcw(train_y, test_y, -predicted, tau=max(upper, 1.0))[0],
        )
    }
    if len(grid) < 2:
        warnings.warn(
            "unisurv.survival: too few distinct times for IBS and AUC",
            AsklepiosWarning,
            stacklevel=3,
        )
        out["ibs"] = out["mean_auc"] = float("nan")
        return out
    cols = grid.astype(int)
    # Censoring everyone still at risk after the grid changes neither metric at grid times (they
    # stay controls / survivors there, weighted by G(t)), and keeps G > 0 at every event used.
    late = time > grid[-1]
    test_y = Surv.from_arrays(event & ~late, np.where(late, grid[-1] + 0.5, time))
    out["ibs"] = _safe("ibs", lambda: integrated_brier_score(train_y, test_y, surv[:, cols], grid))
    out["mean_auc"] = _safe(
        "mean_auc", lambda: cumulative_dynamic_auc(train_y, test_y, 1.0 - surv[:, cols], grid)[1]
    )
    return out


class SurvivalEvaluator(Evaluator):
    """Evaluate survival densities: Harrell/Uno/Antolini C, MAE-U/H/margin, IBS, mean AUC.

    Harrell's and Uno's C and the MAEs use the predicted time; IBS, the time-dependent AUC and
    Antolini's time-dependent C (:func:`antolini_c`) the predicted survival curves. The IPCW
    metrics take the censoring distribution from the training facts (``DataFacts.times`` /
    ``events``) when they are given, else from the evaluated data.

    ``update(outputs, batch)`` reads ``outputs["logits"]`` ``(B, T_max)`` and the batch's
    ``time``, ``event`` and, when present, ``margin``; every state is a ``cat`` state, gathered
    across ranks before :meth:`compute`, because the C-index is not decomposable.

    References:
        Zhang et al., Machine Learning 2025 (arXiv 2409.06209); Haider et al., JMLR 2020 (MAE
        variants); Uno et al., Stat. Med. 2011; Graf et al., Stat. Med. 1999 (IBS); Antolini et
        al., Stat. Med. 2005 (time-dependent C).
    """

    name: ClassVar[str] = "survival"
    higher_is_better = True
    key_directions: ClassVar[Mapping[str, bool]] = {
        "mae_uncensored": False,
        "mae_hinge": False,
        "mae_hinge_all": False,
        "mae_margin": False,
        "ibs": False,
    }
    headline_keys: ClassVar[tuple[str, ...]] = (
        "c_index",
        "antolini_c",
        "uno_c",
        "ibs",
        "mean_auc",
        "mae_uncensored",
        "mae_hinge",
    )

    # ``cat`` states: a list of batch tensors until torchmetrics syncs them into one tensor.
    predicted: list[Tensor]
    surv: list[Tensor]
    time: list[Tensor]
    event: list[Tensor]
    margin: list[Tensor]

    def __init__(self, params: SurvivalEvaluatorParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        train = None
        if ctx.data.times is not None and ctx.data.events is not None:
            train = (np.asarray(ctx.data.times, float), np.asarray(ctx.data.events, int))
        self.reference = train  # not `train`: that is nn.Module.train(mode)
        for state in ("predicted", "surv", "time", "event", "margin"):
            self.add_state(state, default=[], dist_reduce_fx="cat")

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        logits = as_logits(outputs["logits"]).detach().float()
        self.predicted.append(predict_time(logits, self.params.pred_method))
        self.surv.append(survival_curve(logits))
        self.time.append(batch["time"].reshape(-1).float())
        self.event.append(batch["event"].reshape(-1).long())
        margin = batch.get("margin")
        self.margin.append(
            margin.reshape(-1).float()
            if margin is not None
            else torch.full((len(logits),), float("nan"), device=logits.device)
        )

    def compute(self) -> dict[str, Any]:
        def cat(state: Any) -> np.ndarray:
            value = torch.cat(state) if isinstance(state, list) else state
            return value.cpu().numpy()

        margin = cat(self.margin)
        return survival_metrics(
            cat(self.time),
            cat(self.event),
            cat(self.predicted),
            surv=cat(self.surv).astype(np.float64) if self.params.extras else None,
            margin=None if np.isnan(margin).any() else margin,
            train=self.reference,
            quantiles=self.params.quantiles,
        )

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 16
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return logits ``(B, T_max)`` with spread-out times, 3 in 4 events, and margins."""
        num_bins = int(ctx.data.extras.get("t_max", 24))
        batch = example_batch(ctx.replace(data=ctx.data.replace(task="survival")), batch_size)
        gen = torch.Generator().manual_seed(2)
        time = torch.linspace(1, num_bins - 2, batch_size).round()
        batch["time"] = time
        batch["event"] = (torch.arange(batch_size) % 4 != 3).long()
        batch["margin"] = time.long()
        bins = torch.arange(num_bins).float()
        logits = -((bins - time[:, None]) ** 2) / 8 + torch.randn(
            batch_size, num_bins, generator=gen
        )
        return {"logits": logits}, batch
