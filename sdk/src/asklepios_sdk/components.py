"""Base classes for every component kind, with the data contracts of the design.

A sample is a ``dict`` (``image``, ``label`` and per task ``time``, ``event``, ``mask``, ``video``,
``text``, ``meta``); a batch is the collated dict. A segmentation sample's ``mask`` is an integer
``H x W`` map of class indices (or ``K x H x W`` binary masks) aligned with ``image``; its model
returns per-pixel ``logits`` ``(B, C, H, W)``. A model returns a ``dict`` (``logits``,
``features`` and, for adapters that add terms, ``aux_losses``: a ``dict[str, Tensor]`` of scalars
the engine adds to the loss). A loss returns a :class:`LossOutput`. Mixing augmentations keep
``label`` as the first target and add ``label_b`` (second target) and ``lam`` (weight of the first),
so that any loss can be mixed as ``lam * L(label) + (1 - lam) * L(label_b)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
import torchmetrics
from torch import Tensor, nn

from asklepios_sdk.context import BuildContext, DataFacts
from asklepios_sdk.errors import ComponentError

__all__ = [
    "Adapter",
    "Backbone",
    "Batch",
    "BatchTransform",
    "Dataset",
    "DatasetWrapper",
    "Evaluator",
    "Loss",
    "LossOutput",
    "RunState",
    "SampleTransform",
    "ShardedSampler",
    "StepContext",
    "Trainer",
    "build_component",
    "example_batch",
]

Batch = dict[str, Any]


def example_batch(ctx: BuildContext, batch_size: int = 2, seed: int = 0) -> Batch:
    """Make a tiny batch that follows the data contract of ``ctx.data`` (for tests and checks)."""
    gen = torch.Generator().manual_seed(seed)
    facts = ctx.data
    batch: Batch = {}
    if facts.num_features is not None and facts.image_size is None:
        batch["image"] = torch.randn(batch_size, facts.num_features, generator=gen)
    else:
        height, width = facts.image_size or (32, 32)
        channels = facts.in_channels or 3
        batch["image"] = torch.randn(batch_size, channels, height, width, generator=gen)
    if facts.num_classes:
        batch["label"] = torch.randint(0, facts.num_classes, (batch_size,), generator=gen)
    if facts.task == "survival":
        batch["time"] = torch.randint(1, 20, (batch_size,), generator=gen).float()
        batch["event"] = torch.randint(0, 2, (batch_size,), generator=gen)
    if facts.task == "segmentation":
        height, width = batch["image"].shape[-2:]
        classes = max(2, facts.num_classes or 2)
        batch["mask"] = torch.randint(0, classes, (batch_size, height, width), generator=gen)
    return batch


def build_component(
    kind: str,
    component_id: str,
    params: Mapping[str, Any] | None,
    ctx: BuildContext,
    *,
    where: str = "",
) -> Any:
    """Build a registered component as a part of another one (e.g. a frozen auxiliary encoder).

    The host that builds the outer component hands its builder over in ``ctx.components``: the
    part is looked up in that host's registry (its plugin activates on demand), ``params`` are
    validated by its own params model and it is built with ``ctx``, exactly as if a config had
    named it at ``where``, and the run record lists it. A plugin reuses another's component this
    way instead of importing its implementation.

    Raises:
        ComponentError: ``ctx`` was not made by a host (no ``ctx.components``).
        AsklepiosError: the id is unknown, the params do not validate or the build fails; the
            host's message names ``where``, the component and its plugin.
    """
    if ctx.components is None:
        raise ComponentError(
            f"{where or component_id}: building {kind} {component_id!r} as a part needs the "
            "BuildContext the asklepios host builds components with (ctx.components); build the "
            "outer component from a config, or pass a context whose components builder is set"
        )
    return ctx.components(kind, component_id, params, ctx, where)


def _example_logits(ctx: BuildContext, batch: Batch, batch_size: int, seed: int) -> Tensor:
    """Return random logits shaped for the task: ``(B, C)``, or ``(B, C, H, W)`` per pixel."""
    gen = torch.Generator().manual_seed(seed)
    num_classes = ctx.data.num_classes or 2
    if ctx.data.task == "segmentation" and "mask" in batch:
        height, width = batch["mask"].shape[-2:]
        return torch.randn(batch_size, num_classes, height, width, generator=gen)
    return torch.randn(batch_size, num_classes, generator=gen)


@dataclass
class LossOutput:
    """A loss value: ``total`` is what is back-propagated, ``terms`` are logged one by one."""

    total: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)

    def detached_terms(self) -> dict[str, float]:
        """Return every term (and ``loss``, the total) as a Python float, for logging."""
        values = {name: float(value.detach()) for name, value in self.terms.items()}
        values["loss"] = float(self.total.detach())
        return values


class Backbone(nn.Module):
    """A model that maps a batch to ``{"logits": ..., "features": ...}``.

    Subclasses set ``feature_dim`` (width of ``features``) and implement :meth:`forward`. Those that
    can swap their classifier (for decoupled re-training) implement :meth:`reset_classifier`.
    """

    feature_dim: int = 0

    def forward(self, batch: Batch) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise ComponentError(f"{type(self).__name__} does not implement forward(batch)")

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        raise ComponentError(
            f"{type(self).__name__} cannot replace its classifier; "
            "drop 'replace_head' from the stage or use a backbone that supports it"
        )

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return a tiny batch this backbone accepts (the conformance kit uses it)."""
        return example_batch(ctx, batch_size)


class Adapter(nn.Module):
    """A module applied on top of the model built so far (adapters apply in list order).

    :meth:`wrap` receives the inner model and returns the module that replaces it; the default
    stores it as ``self.model`` and returns ``self``, so :meth:`forward` calls ``self.model(batch)``
    and transforms its output (a head, a re-scaling, a test-time input adaptation).
    """

    model: nn.Module

    def wrap(self, model: nn.Module) -> nn.Module:
        """Attach to ``model`` and return the module the engine should use from now on."""
        self.model = model
        return self

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return self.model(batch)

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return a tiny batch the wrapped model accepts (the conformance kit uses it)."""
        return example_batch(ctx, batch_size)


class Loss(nn.Module):
    """A training objective: ``forward(outputs, batch) -> LossOutput``.

    Losses whose behaviour changes with the epoch (DRW, schedules) override :meth:`set_epoch`,
    which the engine calls before every epoch.
    """

    def forward(  # pragma: no cover - abstract
        self, outputs: Mapping[str, Tensor], batch: Batch
    ) -> LossOutput:
        raise ComponentError(f"{type(self).__name__} does not implement forward(outputs, batch)")

    def set_epoch(self, epoch: int) -> None:
        """Receive the 0-based epoch about to start."""

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return ``(outputs, batch)`` the loss accepts; ``outputs["logits"]`` requires grad."""
        batch = example_batch(ctx, batch_size)
        logits = _example_logits(ctx, batch, batch_size, seed=1).requires_grad_(True)
        return {"logits": logits}, batch


class SampleTransform:
    """A per-sample augmentation run inside DataLoader workers: ``sample -> sample``.

    Must pickle (workers receive a copy) and draw randomness from torch's global generator, which
    the engine seeds per sample from the run's seed, the epoch and the sample's position in the
    epoch, so results are reproducible under a seed and the same on any number of ranks.
    """

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - abstract
        raise ComponentError(f"{type(self).__name__} does not implement __call__(sample)")

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return one sample this transform accepts (the conformance kit uses it)."""
        batch = example_batch(ctx, 1)
        return {key: value[0] for key, value in batch.items()}

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return the shape of each output entry given the input ``shapes`` (default: unchanged).

        Transforms that crop or resize override this; the conformance kit checks the outputs
        against it.
        """
        return dict(shapes)


class BatchTransform(nn.Module):
    """A per-batch augmentation run on the device in training only: ``batch -> batch``."""

    def forward(self, batch: Batch) -> Batch:  # pragma: no cover - abstract
        raise ComponentError(f"{type(self).__name__} does not implement forward(batch)")

    def set_epoch(self, epoch: int) -> None:
        """Receive the 0-based epoch about to start."""

    def example_batch(self, ctx: BuildContext, batch_size: int = 4) -> Batch:
        """Return a tiny batch this transform accepts (the conformance kit uses it)."""
        return example_batch(ctx, batch_size)

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return the shape of each output entry given the input ``shapes`` (default: unchanged).

        Mixing transforms keep these and add ``label_b`` (shape of ``label``) and ``lam``.
        """
        return dict(shapes)


class ShardedSampler(torch.utils.data.Sampler[int], ABC):
    """A sampler whose epoch order is drawn globally, then split across ranks.

    Subclasses implement :meth:`epoch_indices`: the full order for one epoch, the same on every rank
    because it is drawn from ``seed + epoch``. The base pads it to a multiple of ``world_size`` (by
    repeating from the start, like ``DistributedSampler``) and yields this rank's strided share.
    """

    def __init__(self, num_samples: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ComponentError(f"rank {rank} is outside world_size {world_size}")
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

    @abstractmethod
    def epoch_indices(
        self, epoch: int, generator: np.random.Generator
    ) -> Sequence[int] | np.ndarray:
        """Return the global order of dataset indices for ``epoch``."""

    def epoch_length(self) -> int:
        """Return how many indices :meth:`epoch_indices` yields globally (default: dataset size)."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = int(epoch)

    def on_evaluation(self, metrics: Mapping[str, Any]) -> None:
        """Receive the latest validation metrics (samplers such as FlexRS rebuild from them)."""

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])

    def __len__(self) -> int:
        return math.ceil(self.epoch_length() / self.world_size)

    def __iter__(self) -> Iterator[int]:
        generator = np.random.default_rng([self.seed, self.epoch])
        order = np.asarray(self.epoch_indices(self.epoch, generator), dtype=np.int64)
        total = len(self) * self.world_size
        if len(order) < total:
            order = np.resize(order, total)
        return iter(order[self.rank : total : self.world_size].tolist())


class Evaluator(torchmetrics.Metric):
    """A metric in the torchmetrics protocol: ``update(outputs, batch)``, ``compute() -> dict``.

    States are declared with ``add_state`` and a reduction so that they sync across ranks.
    ``compute`` returns ``{key: value}``; the engine logs each as ``<name>/<key>``.
    ``higher_is_better`` gives the direction of every key except those in ``key_directions``
    (``{"ece": False}``); the engine uses it to pick the best checkpoint. ``output_keys``, when
    set, declares exactly which keys ``compute`` returns (the conformance kit checks it).
    ``headline_keys`` names the keys a reader looks at first, as ``fnmatch`` patterns over the
    keys of ``compute`` (``"*/acc/mean"``), most important first: the terminal's summary table
    and epoch lines show those, the first is compared between stages at the end of a run, and
    everything else stays in ``summary.json`` and ``metrics.csv``. Left empty, every scalar key
    is a headline key when there are at most eight, else the first eight.
    """

    name: ClassVar[str] = "evaluator"
    higher_is_better: bool | None = True
    key_directions: ClassVar[Mapping[str, bool]] = {}
    output_keys: ClassVar[tuple[str, ...]] = ()
    headline_keys: ClassVar[tuple[str, ...]] = ()
    full_state_update: bool | None = False
    fit_split: ClassVar[str | None] = None
    """A split this evaluator fits on before it evaluates any other (``"train"``), or ``None``.

    Evaluators that learn from data (a linear probe or a kNN classifier on frozen features) set
    it. Before evaluating val or test the engine then runs the model over that split (evaluation
    transforms, eval mode, no gradient, sharded across ranks), passes every batch to
    :meth:`update`, calls :meth:`fit` and then :meth:`reset`. It fits again only when the model
    has taken an optimiser step since, so one pass serves every evaluation of a frozen model.
    """

    def fit(self) -> None:
        """Fit on the states :meth:`update` accumulated over ``fit_split``.

        Called by the engine (and the conformance kit) only when ``fit_split`` is set; sync the
        states across ranks first (``with self.sync_context(): ...``). What is fitted must be
        kept outside the metric states, which :meth:`reset` clears right after.
        """
        raise ComponentError(
            f"{type(self).__name__} sets fit_split={self.fit_split!r} but does not implement fit()"
        )

    def artifacts(self) -> dict[str, Any]:
        """Return non-scalar results (confusion matrices, tables) for the summary and plots.

        A value of the form ``{"rows": [...], "columns": [...], "values": [[...]]}`` (optional
        ``"title"`` and ``"label"``; ``None`` for a missing cell) is a labelled matrix: the
        terminal prints it as one table and ``plots/<stage>/`` gets its heat map, redrawn by
        ``asklepios report``.
        """
        return {}

    def is_higher_better(self, key: str) -> bool:
        """Return whether a larger value of ``key`` is better."""
        return bool(self.key_directions.get(key, self.higher_is_better))

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return ``(outputs, batch)`` that :meth:`update` accepts (the conformance kit uses it)."""
        batch = example_batch(ctx, batch_size)
        return {"logits": _example_logits(ctx, batch, batch_size, seed=2)}, batch


class Dataset(ABC):
    """A source of named splits of sample dicts, and the facts of its training split."""

    split_names: tuple[str, ...] = ("train", "val", "test")

    @abstractmethod
    def split(self, name: str) -> torch.utils.data.Dataset:
        """Return split ``name``: a map-style dataset whose items are sample dicts."""

    @abstractmethod
    def facts(self) -> DataFacts:
        """Return the facts of the training split (class counts, image size, survival times...)."""

    def labels(self, name: str) -> np.ndarray | None:
        """Return the class label of every sample of split ``name`` without loading images."""
        return None

    def files(self, name: str) -> Iterable[tuple[int, str] | tuple[int, str, str]]:
        """Return ``(row, path)`` for every file split ``name`` reads, without reading any.

        ``row`` is the sample's index in the split. A dataset read from a manifest may add a
        third element saying where the file is listed (``"labels.csv line 17"``), so a report
        points at the line to fix. Before training the engine checks every listed path
        (``data.verify``: it exists, and image headers read) and reports each bad one with its
        split, row and listing. Datasets that read files override this; the default lists none,
        so nothing is checked.
        """
        return ()


class DatasetWrapper(Dataset):
    """A dataset that transforms another (``data.wrappers`` in a config, applied in list order)."""

    inner: Dataset

    def wrap(self, inner: Dataset) -> Dataset:
        """Attach to ``inner`` and return the dataset the engine should use from now on."""
        self.inner = inner
        self.split_names = inner.split_names
        return self

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.inner.split(name)

    def facts(self) -> DataFacts:
        return self.inner.facts()

    def labels(self, name: str) -> np.ndarray | None:
        return self.inner.labels(name)


class StepContext(Protocol):
    """What the engine gives a trainer for one optimisation step.

    ``backward`` scales for mixed precision and gradient accumulation; ``step`` clips, steps,
    updates the scaler and zeroes gradients at accumulation boundaries only.
    """

    model: nn.Module
    loss: Loss
    optimizers: Mapping[str, torch.optim.Optimizer]
    epoch: int
    global_step: int
    device: torch.device

    def autocast(self) -> AbstractContextManager[Any]: ...

    def backward(self, loss: Tensor, optimizer: str = "main") -> None: ...

    def step(self, optimizer: str = "main") -> None: ...


class Trainer(ABC):
    """Runs one optimisation step; the engine owns the loop, devices and checkpoints.

    :meth:`optimizer_groups` names the parameter groups that each get an optimizer from the config
    (``optimizer`` for ``main``, ``optimizers.<name>`` for others); :meth:`train_step` does forward,
    loss, backward and step through the :class:`StepContext`.
    """

    def optimizer_groups(self, model: nn.Module) -> Mapping[str, Sequence[Any]]:
        """Return the trainable parameters of each optimizer, by name.

        Each value is a list of parameters, or a list of torch param-group dicts
        (``{"params": [...], "lr_scale": 0.5, "weight_decay": 0.0}``) when groups need their own
        settings (layer-wise learning-rate decay): ``lr_scale`` multiplies the configured learning
        rate, and every other key overrides the optimizer's setting for that group.
        """
        return {"main": [p for p in model.parameters() if p.requires_grad]}

    def set_epoch(self, epoch: int) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Receive the 0-based epoch about to start."""

    @abstractmethod
    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        """Run one step on ``batch`` (already on the device, batch transforms applied)."""

    def example_batch(self, ctx: BuildContext, batch_size: int = 4) -> Batch:
        """Return a tiny batch :meth:`train_step` accepts (the conformance kit uses it)."""
        return example_batch(ctx, batch_size)


class RunState(Protocol):
    """The run as lifecycle hooks see it: read what you need, write only your own files.

    ``output_dir`` is written by rank 0 only (``is_main``); ``model`` is the module being trained
    (unwrapped from DistributedDataParallel).
    """

    config: Any
    context: BuildContext
    output_dir: str
    rank: int
    world_size: int
    is_main: bool
    stage: str
    epoch: int
    global_step: int
    model: nn.Module
    optimizers: Mapping[str, torch.optim.Optimizer]
