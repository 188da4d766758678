"""Label fractions (§6.2) and PanDerm's class-balanced weighted sampler (§6.4).

:func:`label_fraction_indices` reproduces the repo's pandas calls with numpy: pandas'
``DataFrame.sample(n, random_state=s)`` draws ``RandomState(s).choice(len, n, replace=False)``,
i.e. the first ``n`` entries of ``RandomState(s).permutation(len)``.

- ``v1`` (PanDerm ``Derm_Dataset``): shuffle the train rows with seed 42 and keep the first
  ``int(N p)``. Not stratified: a rare class can vanish.
- ``stratified`` (PanDerm-2 ``load_data_balanced``, the default): shuffle the train rows; per
  class, in label order, sample ``min(n_c, max(1, int(n_c p)))`` rows with seed 42; shuffle the
  union with seed 42.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from asklepios_sdk import BuildContext, ComponentError, ShardedSampler

from asklepios_panderm.params import ClassBalancedSamplerParams, LabelFractionSamplerParams

__all__ = [
    "ClassBalancedSampler",
    "LabelFractionSampler",
    "class_balanced_weights",
    "label_fraction_indices",
]


def _pandas_sample(rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Return ``rows`` as ``DataFrame.sample(n=n, random_state=seed)`` orders them."""
    return rows[np.random.RandomState(seed).permutation(len(rows))[:n]]


def label_fraction_indices(
    labels: Sequence[int] | np.ndarray,
    fraction: float,
    mode: Literal["stratified", "v1"] = "stratified",
    seed: int = 42,
) -> np.ndarray:
    """Return the train-row indices a label fraction keeps, in the repo's order.

    Args:
        labels: class label of every train row, in CSV order.
        fraction: ``p`` in (0, 1]; ``1.0`` keeps every row (v1: in shuffled order).
        mode: ``"stratified"`` (PanDerm-2) or ``"v1"`` (PanDerm).
        seed: the pandas ``random_state`` (42 in both repos).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0 < fraction <= 1:
        raise ComponentError(f"label fraction {fraction} is not in (0, 1]")
    rows = np.arange(len(labels))
    shuffled = _pandas_sample(rows, len(rows), seed)
    if mode == "v1":
        return shuffled[: int(len(rows) * fraction)]
    if fraction >= 1:
        return shuffled
    kept = []
    for label in np.unique(labels):
        group = shuffled[labels[shuffled] == label]
        n = min(len(group), max(1, int(len(group) * fraction)))
        kept.append(_pandas_sample(group, n, seed))
    union = np.concatenate(kept)
    return _pandas_sample(union, len(union), seed)


def class_balanced_weights(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return per-sample weights ``N / (K * count[label])`` (K = classes present), as the repo."""
    labels = np.asarray(labels, dtype=np.int64)
    present, counts = np.unique(labels, return_counts=True)
    per_class = dict(
        zip(present.tolist(), (len(labels) / (len(present) * counts)).tolist(), strict=True)
    )
    return np.asarray([per_class[int(v)] for v in labels], dtype=np.float64)


def _train_labels(ctx: BuildContext, component: str) -> np.ndarray:
    labels = ctx.data.labels
    if labels is None:
        raise ComponentError(
            f"{component}: the dataset states no training labels (DataFacts.labels); it needs "
            "a classification dataset such as panderm.derm_csv"
        )
    return np.asarray(labels, dtype=np.int64)


class LabelFractionSampler(ShardedSampler):
    """Train on a label fraction: stratified >= 1 per class (default) or v1's shuffled head.

    The kept rows are fixed by the seed (42, as in the repo); each epoch visits them in a fresh
    order drawn from ``(run seed, epoch)``.
    """

    def __init__(self, params: LabelFractionSamplerParams, ctx: BuildContext) -> None:
        labels = _train_labels(ctx, "panderm.label_fraction")
        super().__init__(len(labels), ctx.seed, ctx.rank, ctx.world_size)
        self.kept = label_fraction_indices(labels, params.fraction, params.mode, params.seed)
        if not len(self.kept):
            raise ComponentError(
                f"panderm.label_fraction: fraction {params.fraction} of {len(labels)} train rows "
                "keeps none (mode v1 rounds down); raise the fraction"
            )

    def epoch_length(self) -> int:
        return len(self.kept)

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return self.kept[generator.permutation(len(self.kept))]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "kept": self.kept.tolist()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.kept = np.asarray(state["kept"], dtype=np.int64)


class ClassBalancedSampler(ShardedSampler):
    """Draw N_train samples with replacement, weighted N_train / (K * count[label]) (§6.4)."""

    def __init__(self, params: ClassBalancedSamplerParams, ctx: BuildContext) -> None:
        labels = _train_labels(ctx, "panderm.class_balanced")
        super().__init__(len(labels), ctx.seed, ctx.rank, ctx.world_size)
        self.weights = class_balanced_weights(labels)
        self.draws = int(params.num_samples or len(labels))

    def epoch_length(self) -> int:
        return self.draws

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        probabilities = self.weights / self.weights.sum()
        return generator.choice(len(self.weights), size=self.draws, replace=True, p=probabilities)
