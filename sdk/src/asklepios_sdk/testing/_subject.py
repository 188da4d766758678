"""What a rule checks (a registration built under its override) and the helpers rules share."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torchmetrics
from torch import Tensor, nn

from asklepios_sdk.components import (
    BatchTransform,
    Dataset,
    SampleTransform,
    Trainer,
)
from asklepios_sdk.context import BuildContext
from asklepios_sdk.params import Params
from asklepios_sdk.testing._collect import Entry
from asklepios_sdk.testing._config import Override
from asklepios_sdk.testing._fixtures import TinyBackbone, TinyDataset

__all__ = ["RuleFailure", "Subject"]

T = TypeVar("T")


class RuleFailure(Exception):
    """A component broke a rule; the message says why and what to change."""


@dataclass
class Subject:
    """A registration with the override and context it is checked under."""

    entry: Entry
    override: Override
    ctx: BuildContext

    @property
    def params_model(self) -> type[Params]:
        return self.entry.registration.params_model

    def params(self) -> Params:
        try:
            return self.params_model(**self.override.params)
        except Exception as err:
            raise RuleFailure(
                f"params {self.params_model.__name__}({dict(self.override.params)}) do not "
                f"validate: {err}. Give every field a default, or pass tiny values with "
                f"Override(params=...)"
            ) from err

    def build(self) -> Any:
        params = self.params()
        target = self.entry.registration.target_path
        try:
            factory = self.entry.factory()
        except Exception as err:
            raise RuleFailure(
                f"its target '{target}' does not import ({type(err).__name__}: {err})"
            ) from err
        try:
            return factory(params, self.ctx)
        except Exception as err:
            raise RuleFailure(f"{target}(params, ctx) raised {type(err).__name__}: {err}") from err

    def model(self) -> nn.Module:
        if self.override.model is not None:
            return self.override.model(self.ctx)
        return TinyBackbone(self.ctx)

    def dataset(self) -> Dataset:
        if self.override.dataset is not None:
            return self.override.dataset(self.ctx)
        return TinyDataset(self.ctx.data)


def _require(condition: bool, why: str) -> None:
    if not condition:
        raise RuleFailure(why)


def _tensors(value: Any) -> Iterable[Tensor]:
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _tensors(item)


def _all_finite(value: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in _tensors(value) if t.is_floating_point())


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _on_cpu(component: Any) -> list[str]:
    if not isinstance(component, nn.Module):
        return []
    tensors: list[tuple[str, str, Tensor]] = []
    tensors += [("parameter", n, t) for n, t in component.named_parameters()]
    tensors += [("buffer", n, t) for n, t in component.named_buffers()]
    return [f"{what} {name} on {t.device}" for what, name, t in tensors if t.device.type != "cpu"]


_KIND_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "backbone": ((nn.Module,), "an nn.Module (asklepios_sdk.Backbone)"),
    "adapter": ((nn.Module,), "an nn.Module with wrap(model) (asklepios_sdk.Adapter)"),
    "loss": ((nn.Module,), "an nn.Module (asklepios_sdk.Loss)"),
    "augmentation": (
        (SampleTransform, BatchTransform),
        "an asklepios_sdk.SampleTransform or asklepios_sdk.BatchTransform",
    ),
    "sampler": ((torch.utils.data.Sampler,), "a torch Sampler (asklepios_sdk.ShardedSampler)"),
    "evaluator": ((torchmetrics.Metric,), "a torchmetrics.Metric (asklepios_sdk.Evaluator)"),
    "dataset": ((Dataset,), "an asklepios_sdk.Dataset or asklepios_sdk.DatasetWrapper"),
    "trainer": ((Trainer,), "an asklepios_sdk.Trainer"),
}
