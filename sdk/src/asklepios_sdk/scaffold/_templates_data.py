"""Source templates of the data-side examples: augmentation, evaluator, sampler, dataset.

As in ``_templates_model``: the family module, the params model for ``params.py`` (the evaluator
and the sampler take none and register ``EmptyParams``) and a test per kind.
"""

__all__ = [
    "AUGMENTATION",
    "AUGMENTATION_PARAMS",
    "AUGMENTATION_TEST",
    "DATASET",
    "DATASET_PARAMS",
    "DATASET_TEST",
    "EVALUATOR",
    "EVALUATOR_TEST",
    "SAMPLER",
    "SAMPLER_TEST",
]

AUGMENTATION = '''"""Per-sample augmentations of the ${plugin} plugin."""

from __future__ import annotations

from typing import Any

import torch
from asklepios_sdk import BuildContext, SampleTransform

from ${package}.params import GaussianNoiseParams


class GaussianNoise(SampleTransform):
    """Add zero-mean Gaussian noise of standard deviation ``std`` with probability ``p``.

    Randomness comes from torch's global generator, which the engine seeds per worker.
    """

    def __init__(self, params: GaussianNoiseParams, ctx: BuildContext) -> None:
        self.std = params.std
        self.p = params.p

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if float(torch.rand(())) >= self.p:
            return sample
        image = sample["image"]
        return {**sample, "image": image + self.std * torch.randn_like(image)}
'''

AUGMENTATION_PARAMS = '''

class GaussianNoiseParams(Params):
    """Params of ``GaussianNoise`` (``augmentations.py``)."""

    std: float = Field(0.05, ge=0, description="Standard deviation of the added noise.")
    p: float = Field(0.5, ge=0, le=1, description="Probability of adding noise to a sample.")
'''

AUGMENTATION_TEST = '''"""GaussianNoise: probability and scale of the noise."""

from __future__ import annotations

import torch
from asklepios_sdk import BuildContext

from ${package}.augmentations import GaussianNoise
from ${package}.params import GaussianNoiseParams


def test_noise_scale_and_probability() -> None:
    image = torch.zeros(1, 64, 64)
    never = GaussianNoise(GaussianNoiseParams(p=0.0), BuildContext())
    assert torch.equal(never({"image": image})["image"], image)
    always = GaussianNoise(GaussianNoiseParams(p=1.0, std=0.2), BuildContext())
    noisy = always({"image": image, "label": 1})
    assert noisy["label"] == 1
    assert abs(float(noisy["image"].std()) - 0.2) < 0.02
'''

EVALUATOR = '''"""Evaluators of the ${plugin} plugin."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from asklepios_sdk import Batch, BuildContext, EmptyParams, Evaluator
from torch import Tensor


def _brier_sum(logits: Tensor, label: Tensor) -> Tensor:
    probs = torch.softmax(logits.float(), dim=-1)
    onehot = torch.nn.functional.one_hot(label.long(), probs.shape[-1]).to(probs.dtype)
    return ((probs - onehot) ** 2).sum()


class BrierScore(Evaluator):
    """Compute the multi-class Brier score (lower is better).

    The mean over samples of ``sum_c (p_c - y_c)^2``, with ``p`` the softmax of the logits and
    ``y`` the one-hot label.

    References: Brier, Verification of forecasts expressed in terms of probability, 1950.
    """

    name = "brier"
    higher_is_better = False
    output_keys = ("brier",)
    total: Tensor
    count: Tensor

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        self.total += _brier_sum(outputs["logits"], batch["label"]).double()
        self.count += batch["label"].numel()

    def compute(self) -> dict[str, Tensor]:
        return {"brier": (self.total / self.count.clamp(min=1)).float()}
'''

EVALUATOR_TEST = '''"""BrierScore against a numpy reference, over two updates."""

from __future__ import annotations

import numpy as np
import torch
from asklepios_sdk import BuildContext, EmptyParams

from ${package}.evaluators import BrierScore


def test_matches_numpy_over_batches() -> None:
    rng = np.random.default_rng(0)
    logits, label = rng.normal(size=(10, 4)), rng.integers(0, 4, 10)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    expected = ((p - np.eye(4)[label]) ** 2).sum(1).mean()
    metric = BrierScore(EmptyParams(), BuildContext())
    for part in (slice(0, 6), slice(6, 10)):
        metric.update({"logits": torch.tensor(logits[part])}, {"label": torch.tensor(label[part])})
    assert abs(float(metric.compute()["brier"]) - expected) < 1e-6
'''

SAMPLER = '''"""Samplers of the ${plugin} plugin."""

from __future__ import annotations

import numpy as np
from asklepios_sdk import BuildContext, ComponentError, EmptyParams, ShardedSampler


class ClassBalancedSampler(ShardedSampler):
    """Draw a class uniformly, then a sample of that class uniformly (with replacement).

    An epoch has as many draws as the training split has samples; the order comes from
    ``(seed, epoch)`` and is split across ranks by the base class.
    """

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        labels = ctx.data.labels
        if labels is None:
            raise ComponentError(
                "${plugin}.class_balanced needs the training labels "
                "(DataFacts.labels); use a dataset that states them"
            )
        super().__init__(len(labels), ctx.seed, ctx.rank, ctx.world_size)
        array = np.asarray(labels)
        self.by_class = [np.flatnonzero(array == c) for c in np.unique(array)]

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        classes = generator.integers(0, len(self.by_class), self.num_samples)
        picks = generator.random(self.num_samples)
        sizes = np.array([len(members) for members in self.by_class])
        offsets = (picks * sizes[classes]).astype(np.int64)
        return np.array([self.by_class[c][o] for c, o in zip(classes, offsets, strict=True)])
'''

SAMPLER_TEST = '''"""ClassBalancedSampler draws every class about equally often."""

from __future__ import annotations

import numpy as np
from asklepios_sdk import BuildContext, DataFacts, EmptyParams

from ${package}.samplers import ClassBalancedSampler


def test_classes_are_drawn_uniformly() -> None:
    labels = (0,) * 900 + (1,) * 90 + (2,) * 10
    ctx = BuildContext(data=DataFacts(num_samples=len(labels), num_classes=3, labels=labels))
    sampler = ClassBalancedSampler(EmptyParams(), ctx)
    drawn = np.asarray(labels)[list(sampler)]
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(shares, 1 / 3, atol=0.05)
'''

DATASET = '''"""Datasets of the ${plugin} plugin."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, DataFacts, Dataset

from ${package}.params import DigitsDatasetParams


class _Split(torch.utils.data.Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images)
        self.targets = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "label": self.targets[index]}


class DigitsDataset(Dataset):
    """Split scikit-learn's 1,797 8x8 handwritten digits into stratified train/val/test.

    References: Alpaydin and Kaynak, UCI Optical Recognition of Handwritten Digits, 1998.
    """

    def __init__(self, params: DigitsDatasetParams, ctx: BuildContext) -> None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)[:, None]
        labels = digits.target.astype(np.int64)
        rng = np.random.default_rng(params.seed)
        parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for c in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == c))
            n_val = round(len(members) * params.val_fraction)
            n_test = round(len(members) * params.test_fraction)
            parts["val"].append(members[:n_val])
            parts["test"].append(members[n_val : n_val + n_test])
            parts["train"].append(members[n_val + n_test :])
        self._splits = {
            name: _Split(images[np.sort(np.concatenate(idx))], labels[np.sort(np.concatenate(idx))])
            for name, idx in parts.items()
        }

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self._splits[name]

    def labels(self, name: str) -> np.ndarray:
        return self._splits[name].targets.numpy()

    def facts(self) -> DataFacts:
        labels = self.labels("train")
        counts = np.bincount(labels, minlength=10)
        return DataFacts(
            task="classification",
            num_samples=len(labels),
            num_classes=10,
            class_counts=tuple(int(n) for n in counts),
            class_names=tuple(str(c) for c in range(10)),
            labels=tuple(int(y) for y in labels),
            in_channels=1,
            image_size=(8, 8),
        )
'''

DATASET_PARAMS = '''

class DigitsDatasetParams(Params):
    """Params of ``DigitsDataset`` (``datasets.py``)."""

    val_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each class for val.")
    test_fraction: float = Field(0.15, gt=0, lt=0.5, description="Share of each class for test.")
    seed: int = Field(0, description="Seed of the stratified split.")
'''

DATASET_TEST = '''"""DigitsDataset: disjoint stratified splits covering all 1,797 digits."""

from __future__ import annotations

from asklepios_sdk import BuildContext

from ${package}.datasets import DigitsDataset
from ${package}.params import DigitsDatasetParams


def test_splits_cover_the_data_and_facts_match() -> None:
    data = DigitsDataset(DigitsDatasetParams(), BuildContext())
    sizes = {name: len(data.split(name)) for name in data.split_names}
    assert sum(sizes.values()) == 1797
    assert 250 < sizes["val"] < 290 and 250 < sizes["test"] < 290
    facts = data.facts()
    assert facts.num_samples == sizes["train"] and sum(facts.class_counts or ()) == sizes["train"]
    assert data.split("train")[0]["image"].shape == (1, 8, 8)
'''
