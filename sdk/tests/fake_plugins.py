"""In-memory plugins for the SDK tests: one well-behaved component per kind, plus rule breakers.

The classes live at module level so that they pickle and can be registered lazily
(``"fake_plugins:FocalLoss"``); their params models live in the light ``fake_params``. Hook objects
are built by ``good_plugin()`` and ``plugin_with(...)`` and handed to the kit without installing
anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from asklepios_sdk import (
    Adapter,
    Backbone,
    Batch,
    BatchTransform,
    BuildContext,
    DataFacts,
    Dataset,
    DatasetWrapper,
    EmptyParams,
    Evaluator,
    Loss,
    LossOutput,
    SampleTransform,
    ShardedSampler,
    StepContext,
    Trainer,
    hookimpl,
)
from asklepios_sdk.registration import REGISTRATION_HOOKS
from fake_params import FocalLossParams, LinearBackboneParams, ScaleAdapterParams
from torch import Tensor, nn

__all__ = [
    "GOOD",
    "Accuracy",
    "FocalLoss",
    "FocalLossParams",
    "Jitter",
    "LinearBackbone",
    "LinearBackboneParams",
    "MaxReducedAccuracy",
    "Mixup",
    "NoiseDataset",
    "Passthrough",
    "PlainTrainer",
    "ScaleAdapter",
    "ScaleAdapterParams",
    "ShuffleSampler",
    "good_plugin",
    "lazy",
    "plugin_with",
]


class LinearBackbone(Backbone):
    """Pool the image and map it through two linear layers."""

    def __init__(self, params: LinearBackboneParams, ctx: BuildContext) -> None:
        super().__init__()
        self.feature_dim = params.hidden
        self.embed = nn.Linear(ctx.data.in_channels or 3, params.hidden)
        self.head = nn.Linear(params.hidden, ctx.data.num_classes or 2)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        features = torch.tanh(self.embed(batch["image"].flatten(2).mean(-1)))
        return {"logits": self.head(features), "features": features}


class ScaleAdapter(Adapter):
    """Multiply the wrapped model's logits by a learned scale."""

    def __init__(self, params: ScaleAdapterParams, ctx: BuildContext) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(params.init))

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        out["logits"] = out["logits"] * self.scale
        return out


class FocalLoss(Loss):
    """Down-weight easy examples: mean of -(1 - p_t)^gamma log p_t."""

    def __init__(self, params: FocalLossParams, ctx: BuildContext) -> None:
        super().__init__()
        self.gamma = params.gamma

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        log_p = torch.log_softmax(outputs["logits"], -1).gather(1, batch["label"][:, None])[:, 0]
        focal = (-((1 - log_p.exp()) ** self.gamma) * log_p).mean()
        return LossOutput(focal, {"focal": focal})


class Jitter(SampleTransform):
    """Add Gaussian noise to the image."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        self.std = 0.1

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        out["image"] = sample["image"] + self.std * torch.randn_like(sample["image"])
        return out


class Mixup(BatchTransform):
    """Mix pairs of samples with a Beta(1, 1) weight."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__()

    def forward(self, batch: Batch) -> Batch:
        lam = float(torch.rand(()))
        perm = torch.randperm(len(batch["label"]))
        out = dict(batch)
        out["image"] = lam * batch["image"] + (1 - lam) * batch["image"][perm]
        out["label_b"] = batch["label"][perm]
        out["lam"] = torch.tensor(lam)
        return out


class ShuffleSampler(ShardedSampler):
    """Shuffle the dataset every epoch."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__(ctx.data.num_samples, ctx.seed, ctx.rank, ctx.world_size)

    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return generator.permutation(self.num_samples)


class Accuracy(Evaluator):
    """Top-1 accuracy."""

    name = "acc"
    output_keys = ("top1",)
    correct: Tensor
    total: Tensor

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        super().__init__()
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, outputs: Mapping[str, Tensor], batch: Batch) -> None:
        self.correct += (outputs["logits"].argmax(-1) == batch["label"]).sum()
        self.total += len(batch["label"])

    def compute(self) -> dict[str, Tensor]:
        return {"top1": self.correct / self.total.clamp(min=1)}


class MaxReducedAccuracy(Accuracy):
    """Top-1 accuracy whose sample count combines across ranks by max: wrong under DDP."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        Evaluator.__init__(self)
        self.add_state("correct", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="max")


class _Images(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.images = torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
        self.targets = torch.arange(n) % 2

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"image": self.images[i], "label": self.targets[i]}


class NoiseDataset(Dataset):
    """Random 3x8x8 images in two alternating classes."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        self._splits = {"train": _Images(10), "val": _Images(4), "test": _Images(4)}

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self._splits[name]

    def facts(self) -> DataFacts:
        return DataFacts(num_samples=10, num_classes=2, in_channels=3, image_size=(8, 8))

    def labels(self, name: str) -> np.ndarray:
        return self._splits[name].targets.numpy()


class Passthrough(DatasetWrapper):
    """Leave the wrapped dataset as it is."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        pass


class PlainTrainer(Trainer):
    """One forward, loss, backward and step."""

    def __init__(self, params: EmptyParams, ctx: BuildContext) -> None:
        pass

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        with step.autocast():
            result = step.loss(step.model(batch), batch)
        step.backward(result.total)
        step.step()
        return result


Entry = tuple[Any, ...]
"""``(name, target, params)`` or ``(name, target, params, doc)``, as passed to ``register``."""

GOOD: dict[str, list[Entry]] = {
    "backbone": [("linear", "fake_plugins:LinearBackbone", LinearBackboneParams)],
    "adapter": [("scale", "fake_plugins:ScaleAdapter", ScaleAdapterParams)],
    "loss": [("focal", "fake_plugins:FocalLoss", FocalLossParams)],
    "augmentation": [
        ("jitter", "fake_plugins:Jitter", EmptyParams),
        ("mixup", "fake_plugins:Mixup", EmptyParams),
    ],
    "sampler": [("shuffle", "fake_plugins:ShuffleSampler", EmptyParams)],
    "evaluator": [("acc", "fake_plugins:Accuracy", EmptyParams)],
    "dataset": [
        ("noise", "fake_plugins:NoiseDataset", EmptyParams),
        ("passthrough", "fake_plugins:Passthrough", EmptyParams),
    ],
    "trainer": [("plain", "fake_plugins:PlainTrainer", EmptyParams)],
}
"""One well-behaved component per kind, registered the way the contract asks."""


def lazy(cls: type) -> str:
    """Return the lazy target ``"module:Qualname"`` of a module-level class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def plugin_with(components: Mapping[str, list[Entry]]) -> object:
    """Return a hook object calling ``register(*entry)`` for each ``{kind: [entry, ...]}``.

    A module-level class given as the target is registered by its lazy reference (see
    :func:`lazy`), so tests can name classes while the kit sees the SDK 0.2 form; strings and
    other callables (functions, local closures) are passed as they are.
    """

    def target(value: Any) -> Any:
        if isinstance(value, type) and "<locals>" not in value.__qualname__:
            return lazy(value)
        return value

    def make_hook(entries: list[Entry]) -> Callable[..., None]:
        def hook(register: Any) -> None:
            for name, value, *rest in entries:
                register(name, target(value), *rest)

        return hook

    namespace = {
        REGISTRATION_HOOKS[kind]: hookimpl(make_hook(entries))
        for kind, entries in components.items()
    }
    return type("InMemoryPlugin", (), {k: staticmethod(v) for k, v in namespace.items()})()


def good_plugin() -> object:
    """Return a hook object registering one well-behaved component per kind."""
    return plugin_with(GOOD)
