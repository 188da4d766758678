"""Figures of predicted densities: per-subject densities and survival curves, KM vs mean curve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from asklepios_sdk.io import write_atomic

from asklepios_unisurv._functional import as_logits, predict_time, survival_curve
from asklepios_unisurv.margins import fit_km

__all__ = ["plot_predictions"]


def plot_predictions(
    logits: torch.Tensor,
    time: np.ndarray,
    event: np.ndarray,
    path: str | Path,
    num_subjects: int = 4,
) -> Path:
    """Write a three-panel PNG: densities and survival curves of a few subjects, KM vs mean S.

    The subjects are spread over the order of observed times; each panel marks the observed time
    (solid for events, dashed for censoring) and the predicted mean. The file is written
    atomically (:func:`asklepios_sdk.io.write_atomic`), so a reader never sees half a figure.

    Args:
        logits: ``(N, T_max)`` density logits.
        time: observed times (bins); event: 1 = event, 0 = censored.
        path: where the PNG goes (its folder is created when missing).
        num_subjects: how many subjects to draw.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    logits = as_logits(logits).detach().float().cpu()
    prob = torch.softmax(logits, -1).numpy()
    surv = survival_curve(logits).numpy()
    mean = predict_time(logits).numpy()
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(int)
    bins = np.arange(prob.shape[1])
    order = np.argsort(time, kind="stable")
    picks = order[np.linspace(0, len(order) - 1, min(num_subjects, len(order))).astype(int)]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i in picks:
        line = axes[0].plot(
            bins, prob[i], label=f"t={time[i]:.0f} ({'event' if event[i] else 'cens.'})"
        )
        color = line[0].get_color()
        axes[1].step(bins, surv[i], where="post", color=color)
        for ax in axes[:2]:
            ax.axvline(time[i], color=color, ls="-" if event[i] else "--", lw=0.8)
            ax.axvline(mean[i], color=color, ls=":", lw=0.8)
    axes[0].set(title="predicted densities", xlabel="time bin", ylabel="p(k)")
    axes[0].legend(fontsize=8)
    axes[1].set(
        title="predicted survival (solid/dashed: observed, dotted: mean)", xlabel="time bin"
    )
    km = fit_km(time, event)
    axes[2].step(km.timeline, km.survival, where="post", label="Kaplan–Meier")
    axes[2].step(bins, surv.mean(0), where="post", label="mean predicted S")
    axes[2].set(title="population survival", xlabel="time bin", ylim=(0, 1.02))
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    try:
        return write_atomic(path, write=lambda tmp: fig.savefig(tmp, dpi=100))
    finally:
        plt.close(fig)
