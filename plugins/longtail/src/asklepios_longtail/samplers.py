"""Re-samplers: class-balanced, effective-number, FlexRS, switch, square-root, progressive.

Every sampler draws N indices with replacement per epoch (N = training-set size), as MONICA's
``WeightedRandomSampler``/``torch.multinomial`` samplers do. Per-sample weights are constant within
a class, so a draw is vectorised as: pick a class from the class probabilities, then a uniform
member of that class. Orders come from ``seed + epoch`` and are sharded across ranks by
:class:`~asklepios_sdk.ShardedSampler`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from asklepios_sdk import BuildContext, ComponentError, EmptyParams, ShardedSampler

from asklepios_longtail import _functional as fn
from asklepios_longtail.params import (
    BBNPairsSamplerParams,
    EffectiveNumberSamplerParams,
    FlexSamplerParams,
    ProgressiveSamplerParams,
    SqrtSamplerParams,
    SwitchSamplerParams,
)
from asklepios_longtail.params.samplers import Rule

__all__ = [
    "BBNPairsSampler",
    "ClassBalancedSampler",
    "ClassProbabilitySampler",
    "EffectiveNumberSampler",
    "FlexSampler",
    "ProgressiveSampler",
    "SqrtSampler",
    "SwitchSampler",
]


def _labels(ctx: BuildContext, component: str) -> np.ndarray:
    labels = ctx.data.labels
    if labels is None:
        raise ComponentError(
            f"{component} needs the training labels (ctx.data.labels is None); use a dataset "
            "whose facts() report labels"
        )
    arr = np.asarray(labels, dtype=np.int64)
    if arr.ndim != 1 or arr.size == 0 or arr.min() < 0:
        raise ComponentError(f"{component}: training labels must be non-negative class ids")
    return arr


class ClassProbabilitySampler(ShardedSampler):
    """Base: draw N indices per epoch with replacement from per-epoch class probabilities."""

    def __init__(self, ctx: BuildContext) -> None:
        labels = _labels(ctx, type(self).__name__)
        super().__init__(len(labels), seed=ctx.seed, rank=ctx.rank, world_size=ctx.world_size)
        num_classes = max(int(labels.max()) + 1, int(ctx.data.num_classes or 0))
        self.counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
        self.members = np.argsort(labels, kind="stable")
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.total_epochs = max(int(ctx.epochs), 1)

    def class_probabilities(self, epoch: int) -> np.ndarray:  # pragma: no cover - abstract
        """Return the probability of drawing each class at ``epoch``."""
        raise ComponentError(f"{type(self).__name__} does not define class probabilities")

    def _normalise(self, mass: np.ndarray) -> np.ndarray:
        mass = np.where(self.counts > 0, mass, 0.0)
        return mass / mass.sum()

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        # One uniform u per draw picks the class (u in [lo_c, lo_c + p_c)) and, rescaled to
        # (u − lo_c) / p_c, which is uniform on [0, 1) given the class, the member within it.
        probs = self.class_probabilities(epoch)
        cdf = np.cumsum(probs)
        cdf[-1] = 1.0
        lower = np.concatenate([[0.0], cdf[:-1]])
        scale = np.divide(self.counts, probs, out=np.zeros_like(probs), where=probs > 0)
        u = generator.random(self.num_samples)
        classes = np.minimum(np.searchsorted(cdf, u, side="right"), len(probs) - 1)
        within = ((u - lower[classes]) * scale[classes]).astype(np.int64)
        within = np.minimum(within, self.counts[classes].astype(np.int64) - 1)
        return self.members[self.offsets[classes] + within]


class ClassBalancedSampler(ClassProbabilitySampler):
    """Draw classes uniformly (per-sample weight 1/n_c): MONICA's RS and GCL samplers.

    References: Kang et al., ICLR 2020 (class-balanced sampling). MONICA ``sampler/get_sampler.py``.
    """

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__(ctx)

    def class_probabilities(self, epoch: int) -> np.ndarray:
        return self._normalise(np.ones_like(self.counts))


class EffectiveNumberSampler(ClassProbabilitySampler):
    """Draw with per-sample weight (1−β)/(1−β^{n_c}) (RSG's sampler; class mass ∝ n_c·weight).

    References: Cui et al., CVPR 2019; Wang et al., CVPR 2021 (RSG). MONICA ``RSGDatasetSampler``.
    """

    def __init__(self, params: EffectiveNumberSamplerParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.beta = params.beta

    def class_probabilities(self, epoch: int) -> np.ndarray:
        safe = np.maximum(self.counts, 1)
        return self._normalise(safe * (1 - self.beta) / (1 - np.power(self.beta, safe)))


class FlexSampler(ClassProbabilitySampler):
    """Draw with per-sample weight ∝ 1/a_c, a_c = last validation accuracy of class c (FlexRS).

    The class mass is ∝ n_c / a_c (not class-balanced). Rebuilt from every evaluation through
    :meth:`on_evaluation`; before the first one it samples as ``initial`` says.

    References: Ju et al., MICCAI 2022 (simplified as in MONICA ``DifficultyDatasetSampler``).
    """

    def __init__(self, params: FlexSamplerParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        self.accuracy: np.ndarray | None = None
        self.updates = 0

    def on_evaluation(self, metrics: Mapping[str, Any]) -> None:
        """Read the per-class validation accuracy from ``metrics`` and rebuild the weights."""
        num_classes = len(self.counts)
        found: dict[int, float] = {}
        for c in range(num_classes):
            wanted = self.params.accuracy_key.format(c=c)
            pattern = re.compile(rf"(^|.*/){re.escape(wanted)}$")
            for key, value in metrics.items():
                if pattern.match(str(key)):
                    found[c] = float(value)
                    break
        if not found:
            return
        missing = [c for c in range(num_classes) if c not in found and self.counts[c] > 0]
        if missing:
            raise ComponentError(
                f"{type(self).__name__}: validation metrics lack the accuracy of classes {missing} "
                f"(key pattern {self.params.accuracy_key!r}); add the longtail.shot_groups "
                "evaluator or set accuracy_key to your evaluator's per-class key"
            )
        self.set_accuracy([found.get(c, 0.0) for c in range(num_classes)])

    def set_accuracy(self, accuracy: Sequence[float]) -> None:
        """Set the per-class accuracies a_c (any scale) used from the next epoch on."""
        acc = np.asarray(accuracy, dtype=np.float64)
        if acc.shape != self.counts.shape:
            raise ComponentError(
                f"{type(self).__name__}: got {acc.size} accuracies for {self.counts.size} classes"
            )
        zero = (acc <= 0) & (self.counts > 0)
        if zero.any():
            if self.params.zero_accuracy == "error":
                raise ComponentError(
                    f"{type(self).__name__}: classes {np.flatnonzero(zero).tolist()} have 0 "
                    "validation accuracy, which gives an infinite FlexRS weight; set "
                    "zero_accuracy: min_nonzero to replace it by the smallest non-zero accuracy"
                )
            positive = acc[acc > 0]
            acc = np.where(acc > 0, acc, positive.min() if positive.size else 1.0)
        self.accuracy = acc
        self.updates += 1

    def class_probabilities(self, epoch: int) -> np.ndarray:
        if self.accuracy is None:
            if self.params.initial == "class_balanced":
                return self._normalise(np.ones_like(self.counts))
            return self._normalise(self.counts)
        return self._normalise(self.counts / np.where(self.accuracy > 0, self.accuracy, 1.0))

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        if self.accuracy is None and self.params.initial == "shuffle":
            return generator.permutation(self.num_samples)
        return super().epoch_indices(epoch, generator)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["accuracy"] = None if self.accuracy is None else self.accuracy.tolist()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        acc = state.get("accuracy")
        self.accuracy = None if acc is None else np.asarray(acc, dtype=np.float64)


class SqrtSampler(ClassProbabilitySampler):
    """Draw classes with probability n_c^q / Σ_k n_k^q (square-root sampling for q = 1/2).

    Beyond MONICA. References: Mahajan et al., ECCV 2018; Kang et al., ICLR 2020.
    """

    def __init__(self, params: SqrtSamplerParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.q = params.q

    def class_probabilities(self, epoch: int) -> np.ndarray:
        return self._normalise(np.power(np.maximum(self.counts, 1), self.q))


class ProgressiveSampler(ClassProbabilitySampler):
    """Draw classes with p_c(e) = (1 − e/E)·π_c + (e/E)/C (progressive-balanced sampling).

    Beyond MONICA. References: Kang et al., ICLR 2020.
    """

    def __init__(self, params: ProgressiveSamplerParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.horizon = params.epochs or self.total_epochs

    def class_probabilities(self, epoch: int) -> np.ndarray:
        t = min(max(epoch / self.horizon, 0.0), 1.0)
        present = self.counts > 0
        prior = self.counts / self.counts.sum()
        return self._normalise((1 - t) * prior + t / present.sum())


class SwitchSampler(ClassProbabilitySampler):
    """Change the sampling rule at epoch int(0.8E) (RSG: shuffle → effective number).

    References: MONICA ``main.py`` (RSG loader rebuild).
    """

    def __init__(self, params: SwitchSamplerParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params
        self.switch_epoch = fn.drw_start(
            params.epochs or self.total_epochs, params.at_fraction, params.at
        )

    def rule(self, epoch: int) -> Rule:
        """Return the rule in force at ``epoch``."""
        return self.params.after if epoch >= self.switch_epoch else self.params.before

    def class_probabilities(self, epoch: int) -> np.ndarray:
        rule = self.rule(epoch)
        safe = np.maximum(self.counts, 1)
        if rule == "class_balanced":
            return self._normalise(np.ones_like(self.counts))
        if rule == "effective_number":
            beta = self.params.beta
            return self._normalise(safe * (1 - beta) / (1 - np.power(beta, safe)))
        if rule == "sqrt":
            return self._normalise(np.power(safe, self.params.q))
        return self._normalise(self.counts)

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        if self.rule(epoch) == "shuffle":
            return generator.permutation(self.num_samples)
        return super().epoch_indices(epoch, generator)


class BBNPairsSampler(ClassProbabilitySampler):
    """Interleave a shuffled stream and a re-balanced stream for BBN (a, b, a, b, ...).

    An epoch holds 2N indices: every index once (stream a) and N class-balanced draws (stream
    b), arranged so that each rank's shard alternates a and b. The ``longtail.bbn`` trainer
    splits each batch into the two streams; set the loader batch size to twice BBN's.

    References: Zhou et al., CVPR 2020. MONICA ``dataset/get_datasets.py`` (``RS_train``).
    """

    def __init__(self, params: BBNPairsSamplerParams, ctx: BuildContext) -> None:
        super().__init__(ctx)
        self.params = params

    def epoch_length(self) -> int:
        blocks = -(-self.num_samples // self.world_size)
        return 2 * blocks * self.world_size

    def class_probabilities(self, epoch: int) -> np.ndarray:
        rule = self.params.second
        safe = np.maximum(self.counts, 1)
        if rule == "class_balanced":
            return self._normalise(np.ones_like(self.counts))
        if rule == "effective_number":
            return self._normalise(safe * 1e-4 / (1 - np.power(0.9999, safe)))
        if rule == "sqrt":
            return self._normalise(np.sqrt(safe))
        return self._normalise(self.counts)

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        first = generator.permutation(self.num_samples)
        second = super().epoch_indices(epoch, generator)
        width = self.world_size
        blocks = -(-self.num_samples // width)
        pad = blocks * width
        a = np.resize(first, pad).reshape(blocks, width)
        b = np.resize(second, pad).reshape(blocks, width)
        return np.stack([a, b], axis=1).reshape(-1)
