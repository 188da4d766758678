"""Private pure functions shared by the family modules: class vectors and schedules.

Every function takes the training class counts ``n`` (indexed by class id) and returns a float64
numpy vector; the losses turn them into buffers. Notation follows the spec: π_c = n_c / N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from asklepios_sdk import ComponentError

__all__ = [
    "cb_weights",
    "check_counts",
    "drw_start",
    "grw_weights",
    "inverted_prior",
    "label_aware_epsilon",
    "ldam_margins",
    "log_inverse_weights",
    "prior",
    "vs_scales",
]


def check_counts(
    counts: Sequence[int] | np.ndarray | None, component: str, *, positive: bool = True
) -> np.ndarray:
    """Validate training class counts for ``component`` and return them as a float64 vector.

    Raises:
        ComponentError: when counts are missing, not one-dimensional, negative, or (with
            ``positive``) contain an empty class that the component's formula cannot handle.
    """
    if counts is None:
        raise ComponentError(
            f"{component} needs the training class counts, but the build context has none "
            "(ctx.data.class_counts is None); use a classification dataset whose facts() report "
            "class_counts, or pass them explicitly"
        )
    arr = np.asarray(counts, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ComponentError(f"{component}: class counts must be a non-empty vector, got {arr!r}")
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ComponentError(f"{component}: class counts must be finite and >= 0, got {arr!r}")
    if positive and np.any(arr == 0):
        empty = np.flatnonzero(arr == 0).tolist()
        raise ComponentError(
            f"{component}: classes {empty} have no training samples, so their class weight or "
            "prior is undefined; remove the empty classes from the label map or choose a "
            "component that does not depend on class counts"
        )
    return arr


def prior(counts: np.ndarray) -> np.ndarray:
    """Return the training prior π_c = n_c / Σ_k n_k."""
    return counts / counts.sum()


def cb_weights(counts: np.ndarray, beta: float = 0.9999) -> np.ndarray:
    """Return class-balanced weights (Cui et al. 2019) rescaled so that Σ_c w_c = C.

    w_c ∝ (1 − β) / (1 − β^{n_c}); β = 0 gives uniform weights.
    """
    raw = (1.0 - beta) / (1.0 - np.power(beta, counts)) if beta > 0 else np.ones_like(counts)
    return raw / raw.sum() * counts.size


def log_inverse_weights(counts: np.ndarray) -> np.ndarray:
    """Return WeightedSoftmax weights w_c = 1 + log(n_max / n_c) (not renormalised)."""
    return 1.0 + np.log(counts.max() / counts)


def grw_weights(counts: np.ndarray, q: float = 1.2) -> np.ndarray:
    """Return generalised re-weighting weights w_c = π_c^{−q}, rescaled so Σ_c w_c = C."""
    raw = np.power(prior(counts), -q)
    return raw / raw.sum() * counts.size


def ldam_margins(counts: np.ndarray, max_m: float = 0.5) -> np.ndarray:
    """Return LDAM margins m_c = M · n_c^{−1/4} / max_k n_k^{−1/4} (rarest class gets M)."""
    raw = np.power(counts, -0.25)
    return raw * (max_m / raw.max())


def vs_scales(counts: np.ndarray, gamma: float = 0.3) -> np.ndarray:
    """Return the VS multiplicative factor 1/Δ_c = (n_c / n_max)^γ."""
    return np.power(counts / counts.max(), gamma)


def inverted_prior(counts: np.ndarray) -> np.ndarray:
    """Return SADE's inverted prior: the prior values re-assigned in reversed rank order.

    The most frequent class receives the smallest prior value, the second most frequent the second
    smallest, and so on (ties keep class-id order).
    """
    pi = prior(counts)
    order = np.argsort(pi, kind="stable")  # ascending values
    ranks = np.empty_like(order)
    ranks[order] = np.arange(order.size)
    return np.sort(pi, kind="stable")[order.size - 1 - ranks]


def label_aware_epsilon(
    counts: np.ndarray,
    shape: str = "concave",
    eps_head: float = 0.3,
    eps_tail: float = 0.0,
    power: float = 2.0,
) -> np.ndarray:
    """Return MiSLAS label-aware smoothing factors ε_c for each class.

    With x_c = (n_c − n_min) / (n_max − n_min): concave ε_tail + (ε_head − ε_tail)·sin(x_c π/2);
    linear ε_tail + (ε_head − ε_tail)·x_c; convex ε_head − (ε_head − ε_tail)·cos(x_c π/2);
    exp ε_tail + (ε_head − ε_tail)·x_c^power. Equal counts give ε_head everywhere.
    """
    span = counts.max() - counts.min()
    x = (counts - counts.min()) / span if span > 0 else np.ones_like(counts)
    delta = eps_head - eps_tail
    if shape == "concave":
        return eps_tail + delta * np.sin(x * np.pi / 2)
    if shape == "linear":
        return eps_tail + delta * x
    if shape == "convex":
        return eps_head - delta * np.cos(x * np.pi / 2)
    if shape == "exp":
        return eps_tail + delta * np.power(x, power)
    raise ComponentError(
        f"label-aware smoothing shape {shape!r} is unknown; use concave, linear, convex or exp"
    )


def drw_start(epochs: int, fraction: float = 0.8, at: int | None = None) -> int:
    """Return the first epoch of a deferred schedule: ``at`` if given, else int(fraction · E)."""
    if at is not None:
        return int(at)
    return math.floor(epochs * fraction + 1e-9)
