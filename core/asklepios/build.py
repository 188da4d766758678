"""Turn a validated experiment config into the objects the engine runs.

Order: dataset (its files checked first, ``data.verify``; then wrappers, in list order) -> the
read-only :class:`BuildContext` of the training split -> sampler (wrapped to shard across ranks
when it does not) -> per-sample and per-batch transforms -> backbone (then its weights) ->
adapters via ``Adapter.wrap`` in list order (each with its weights) -> loss -> evaluators ->
trainer. Optimizers and schedules are built by :func:`build_optimizers` once the engine has
applied a stage's freezing. Nothing here mutates the config.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from asklepios_sdk import (
    BatchTransform,
    BuildContext,
    ComponentError,
    DataFacts,
    Dataset,
    DatasetWrapper,
    Evaluator,
    Loss,
    LossOutput,
    SampleTransform,
    Trainer,
)
from torch import nn

from asklepios.config.model import ComponentSpec, ExperimentConfig
from asklepios.datafiles import verify_dataset
from asklepios.sampling import count_train_batches, ensure_sharded

if TYPE_CHECKING:
    from asklepios.registry import ComponentEntry
from asklepios.optim import build_optimizer, build_schedule

__all__ = [
    "Builder",
    "Built",
    "ComponentSource",
    "FoldDataset",
    "LossWithAux",
    "TransformedSplit",
    "build_experiment",
    "build_model",
    "build_optimizers",
    "default_specs",
    "drops_single_batch",
    "facts_after_transforms",
    "sample_transforms",
    "training_facts",
]


class ComponentSource(Protocol):
    """What build needs from the registry: ``get(kind, id)`` returning an entry with ``build``."""

    def get(self, kind: str, component_id: str) -> ComponentEntry: ...


class TransformedSplit(torch.utils.data.Dataset):
    """A split whose samples pass through per-sample transforms (run in DataLoader workers)."""

    def __init__(
        self, inner: torch.utils.data.Dataset, transforms: Sequence[SampleTransform]
    ) -> None:
        self.inner = inner
        self.transforms = list(transforms)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.inner[index]
        for transform in self.transforms:
            sample = transform(sample)
        return sample


class FoldDataset(DatasetWrapper):
    """Fold ``fold`` of ``k`` stratified folds over train+val (the fold is ``val``)."""

    def __init__(self, fold: int, k: int, seed: int) -> None:
        self.fold, self.k, self.seed = fold, k, seed

    def wrap(self, inner: Dataset) -> Dataset:
        from sklearn.model_selection import KFold, StratifiedKFold

        super().wrap(inner)
        pool: torch.utils.data.ConcatDataset[Any] = torch.utils.data.ConcatDataset(
            [inner.split("train"), inner.split("val")]
        )
        train_labels, val_labels = inner.labels("train"), inner.labels("val")
        n = len(pool)
        if train_labels is not None and val_labels is not None:
            labels = np.concatenate([train_labels, val_labels])
            splitter = StratifiedKFold(self.k, shuffle=True, random_state=self.seed)
            train_idx, val_idx = list(splitter.split(np.zeros(n), labels))[self.fold]
        else:
            labels = None
            splitter = KFold(self.k, shuffle=True, random_state=self.seed)
            train_idx, val_idx = list(splitter.split(np.zeros(n)))[self.fold]
        self._labels_all = labels
        self._index = {"train": np.sort(train_idx), "val": np.sort(val_idx)}
        self._pool = pool
        base = inner.facts()
        if labels is not None and base.num_classes:
            train_lab = labels[self._index["train"]]
            counts = np.bincount(train_lab, minlength=base.num_classes)
            self._facts = base.replace(
                num_samples=len(train_lab),
                labels=tuple(int(v) for v in train_lab),
                class_counts=tuple(int(c) for c in counts),
            )
        else:
            self._facts = base.replace(num_samples=len(self._index["train"]))
        if base.times is not None:  # survival facts describe the fold's training split too
            samples = [pool[int(i)] for i in self._index["train"]]
            self._facts = self._facts.replace(
                times=tuple(float(s["time"]) for s in samples),
                events=tuple(int(s["event"]) for s in samples),
            )
        return self

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name in self._index:
            return torch.utils.data.Subset(self._pool, self._index[name].tolist())
        return self.inner.split(name)

    def labels(self, name: str) -> np.ndarray | None:
        if name in self._index:
            return None if self._labels_all is None else self._labels_all[self._index[name]]
        return self.inner.labels(name)

    def facts(self) -> DataFacts:
        return self._facts


class LossWithAux(Loss):
    """The configured loss plus every ``aux_losses`` term the model's adapters return."""

    def __init__(self, inner: Loss) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, outputs: Any, batch: Any) -> LossOutput:
        result = self.inner(outputs, batch)
        aux = outputs.get("aux_losses") if isinstance(outputs, dict) else None
        if not aux:
            return result
        total = result.total
        terms = dict(result.terms)
        for name, value in aux.items():
            total = total + value
            terms[f"aux/{name}"] = value.detach()
        return LossOutput(total, terms)

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)


@dataclass
class Built:
    """Everything one stage needs, built from its effective config."""

    config: ExperimentConfig
    dataset: Dataset
    ctx: BuildContext
    train_split: torch.utils.data.Dataset
    eval_splits: dict[str, torch.utils.data.Dataset]
    sampler: Any
    batch_transforms: list[BatchTransform]
    backbone: nn.Module
    model: nn.Module
    loss: LossWithAux | None
    evaluators: list[Evaluator]
    trainer: Trainer
    component_ids: list[str] = field(default_factory=list)
    weights: dict[str, Any] = field(default_factory=dict)


def _with_transforms(
    split: torch.utils.data.Dataset, transforms: Sequence[SampleTransform]
) -> torch.utils.data.Dataset:
    """Return ``split`` itself when there are no transforms (no extra call per sample)."""
    return TransformedSplit(split, transforms) if transforms else split


class Builder:
    """Build components through the registry, recording each id and weights file as it goes."""

    def __init__(self, source: ComponentSource) -> None:
        self.source = source
        self.ids: list[str] = []
        self.weights: dict[str, Any] = {}

    def component(self, kind: str, spec: ComponentSpec, ctx: BuildContext, where: str) -> Any:
        """Build ``spec`` (a ``kind``) at config path ``where`` and record its id."""
        built = self.source.get(kind, spec.type).build(spec.params, ctx, where=where)
        self.ids.append(spec.type)
        return built

    def part(
        self,
        kind: str,
        component_id: str,
        params: Mapping[str, Any] | None,
        ctx: BuildContext,
        where: str,
    ) -> Any:
        """Build a component another one is made of (``ctx.components``); record its id."""
        entry = self.source.get(kind, component_id)
        self.ids.append(entry.id)
        return entry.build(params, ctx, where=where)

    def module(self, kind: str, spec: ComponentSpec, ctx: BuildContext, where: str) -> Any:
        """Build a model part, then load its ``weights:`` (kept for the run record)."""
        module = self.component(kind, spec, ctx, where)
        if spec.weights is not None:
            from asklepios_sdk.weights import load_weights

            self.weights[where] = load_weights(module, spec.weights, where=where).as_record()
        return module


def facts_after_transforms(
    facts: DataFacts, split: torch.utils.data.Dataset, transforms: Sequence[SampleTransform]
) -> DataFacts:
    """Fill image size and channels from one sample passed through the eval transforms."""
    if len(split) == 0:  # type: ignore[arg-type]
        return facts
    sample = split[0]
    for transform in transforms:
        sample = transform(sample)
    image = sample.get("image") if isinstance(sample, dict) else None
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        return facts.replace(in_channels=int(image.shape[0]), image_size=tuple(image.shape[1:]))
    if isinstance(image, torch.Tensor) and image.dim() == 1 and facts.num_features is None:
        return facts.replace(num_features=int(image.shape[0]))
    return facts


def _require_type(component: Any, wanted: type, where: str, why: str) -> None:
    if not isinstance(component, wanted):
        raise ComponentError(f"{where}: {type(component).__name__} {why}")


def _dataset(
    builder: Builder,
    config: ExperimentConfig,
    ctx: BuildContext,
    fold: tuple[int, int] | None,
    verify: bool = False,
) -> Dataset:
    """Build the dataset, check its files, apply its wrappers in list order, then the k-fold."""
    data = config.data
    dataset = builder.component("dataset", data.dataset, ctx, "data.dataset")
    if verify:
        verify_dataset(dataset, data.verify, f"data.dataset [{data.dataset.type}]")
    for i, spec in enumerate(data.wrappers):
        wrapper = builder.component("dataset", spec, ctx, f"data.wrappers.{i}")
        _require_type(wrapper, DatasetWrapper, f"data.wrappers.{i}", "is not a DatasetWrapper")
        dataset = wrapper.wrap(dataset)
    if fold is not None:
        dataset = FoldDataset(fold[0], fold[1], config.seed).wrap(dataset)
    return dataset


def training_facts(dataset: Dataset) -> DataFacts:
    """Return the training split's facts, with its labels when the dataset leaves them out."""
    facts = dataset.facts()
    if facts.labels is None and facts.task == "classification":
        labels = dataset.labels("train")
        if labels is not None:
            facts = facts.replace(labels=tuple(int(v) for v in labels))
    return facts


def sample_transforms(
    builder: Builder, specs: Sequence[ComponentSpec], ctx: BuildContext, where: str
) -> list[SampleTransform]:
    """Build the per-sample transforms at ``where``; refuse a per-batch augmentation there."""
    transforms = [
        builder.component("augmentation", s, ctx, f"{where}.{i}") for i, s in enumerate(specs)
    ]
    for i, transform in enumerate(transforms):
        _require_type(
            transform,
            SampleTransform,
            f"{where}.{i}",
            "is not a per-sample transform; list per-batch augmentations under "
            "data.batch_transforms",
        )
    return transforms


def _batch_transforms(
    builder: Builder, specs: Sequence[ComponentSpec], ctx: BuildContext
) -> list[BatchTransform]:
    transforms = []
    for i, spec in enumerate(specs):
        where = f"data.batch_transforms.{i}"
        transform = builder.component("augmentation", spec, ctx, where)
        _require_type(
            transform,
            BatchTransform,
            where,
            "is a per-sample transform; list it under data.transforms.train instead",
        )
        transforms.append(transform)
    return transforms


def drops_single_batch(config: ExperimentConfig, world_size: int) -> bool:
    """Return whether a last training batch of one sample is dropped.

    BatchNorm cannot normalise one sample, so the loop drops such a batch, unless BatchNorm is
    synchronised over several ranks (``train.sync_batchnorm``, on by default under DDP), where
    the batch holds one sample per rank.
    """
    sync = config.train.sync_batchnorm
    return not (world_size > 1 and sync is not False)


def _steps_per_epoch(config: ExperimentConfig, sampler: Any, world_size: int) -> int:
    """Return optimiser steps per epoch on this rank (batches over gradient accumulation)."""
    loader = config.data.loader
    batches = count_train_batches(
        len(sampler), loader.batch_size, loader.drop_last, drops_single_batch(config, world_size)
    )
    return max(1, math.ceil(batches / config.train.accumulate))


def build_model(
    builder: Builder, config: ExperimentConfig, ctx: BuildContext
) -> tuple[nn.Module, nn.Module]:
    """Build the backbone and wrap it in each adapter in list order; return (backbone, model)."""
    backbone = builder.module("backbone", config.model.backbone, ctx, "model.backbone")
    model: nn.Module = backbone
    for i, spec in enumerate(config.model.adapters):
        adapter = builder.module("adapter", spec, ctx, f"model.adapters.{i}")
        model = adapter.wrap(model)
    return backbone, model


def default_specs(
    config: ExperimentConfig, facts: DataFacts
) -> tuple[ComponentSpec | None, list[ComponentSpec]]:
    """Return the loss and evaluators to build: the configured ones, else the task's defaults."""
    loss = config.loss
    if loss is None and facts.task == "classification":
        loss = ComponentSpec(type="core.cross_entropy")
    evaluators = list(config.evaluators)
    if not evaluators and facts.task == "classification" and (facts.num_classes or 0) >= 2:
        evaluators = [ComponentSpec(type="core.classification")]
    return loss, evaluators


def build_experiment(
    config: ExperimentConfig,
    source: ComponentSource,
    *,
    rank: int = 0,
    world_size: int = 1,
    device: str = "cpu",
    stage: str = "main",
    output_dir: str | None = None,
    fold: tuple[int, int] | None = None,
    verify_data: bool = True,
    extras: Mapping[str, Any] | None = None,
) -> Built:
    """Build every component of ``config`` (one stage's effective config).

    Args:
        config: the validated config with full component ids.
        source: the registry (``get(kind, id).build(params, ctx, where=...)``).
        rank: this process's rank; world_size: number of processes.
        device: where per-batch components will run.
        stage: name of the stage being built; output_dir: the run directory.
        fold: ``(fold, k)`` for k-fold cross-validation over train+val.
        verify_data: check the dataset's files (``data.verify``); off when a run has already
            checked the same dataset for an earlier stage or fold.
        extras: facts for ``ctx.extras`` (the datasets earlier stages generated).
    """
    builder = Builder(source)
    data = config.data
    ctx = BuildContext(
        seed=config.seed,
        device=device,
        rank=rank,
        world_size=world_size,
        epochs=config.train.epochs,
        stage=stage,
        output_dir=output_dir,
        extras=extras or {},
        components=builder.part,
    )
    dataset = _dataset(builder, config, ctx, fold, verify_data)
    facts = training_facts(dataset)
    ctx = ctx.replace(data=facts)
    eval_tf = sample_transforms(builder, data.transforms.eval, ctx, "data.transforms.eval")
    train_split = dataset.split("train")
    ctx = ctx.replace(data=facts_after_transforms(facts, train_split, eval_tf))
    train_tf = sample_transforms(builder, data.transforms.train, ctx, "data.transforms.train")
    sampler_spec = data.sampler or ComponentSpec(type="core.random")
    sampler = builder.component("sampler", sampler_spec, ctx, "data.sampler")
    sampler = ensure_sharded(sampler, rank, world_size, config.seed)
    ctx = ctx.replace(steps_per_epoch=_steps_per_epoch(config, sampler, world_size))
    batch_tf = _batch_transforms(builder, data.batch_transforms, ctx)
    backbone, model = build_model(builder, config, ctx)
    loss_spec, eval_specs = default_specs(config, facts)
    loss = None
    if loss_spec is not None:
        loss = LossWithAux(builder.component("loss", loss_spec, ctx, "loss"))
    evaluators = [
        builder.component("evaluator", s, ctx, f"evaluators.{i}") for i, s in enumerate(eval_specs)
    ]
    trainer = builder.component("trainer", config.trainer, ctx, "trainer")
    fit_splits = sorted({e.fit_split for e in evaluators if getattr(e, "fit_split", None)})
    splits: dict[str, torch.utils.data.Dataset[Any]] = {
        name: _with_transforms(dataset.split(name), eval_tf)
        for name in ("val", "test", *fit_splits)
        if name in dataset.split_names
    }
    return Built(
        config=config,
        dataset=dataset,
        ctx=ctx,
        train_split=_with_transforms(train_split, train_tf),
        eval_splits=splits,
        sampler=sampler,
        batch_transforms=batch_tf,
        backbone=backbone,
        model=model,
        loss=loss,
        evaluators=evaluators,
        trainer=trainer,
        component_ids=builder.ids,
        weights=builder.weights,
    )


def _parameters(params: Sequence[Any]) -> list[nn.Parameter]:
    """Return the parameters of a trainer's group: a list of parameters or of param-group dicts."""
    out: list[nn.Parameter] = []
    for item in params:
        out += list(item["params"]) if isinstance(item, dict) else [item]
    return out


def _trainable(params: Sequence[Any]) -> list[Any]:
    """Drop frozen parameters; param-group dicts keep their settings, empty ones are dropped."""
    if not any(isinstance(item, dict) for item in params):
        return [p for p in params if p.requires_grad]
    groups = []
    for item in params:
        group = dict(item) if isinstance(item, dict) else {"params": [item]}
        group["params"] = [p for p in group["params"] if p.requires_grad]
        if group["params"]:
            groups.append(group)
    return groups


def build_optimizers(
    built: Built, model: nn.Module, steps_per_epoch: int
) -> tuple[dict[str, torch.optim.Optimizer], dict[str, torch.optim.lr_scheduler.LRScheduler]]:
    """Build one optimizer (and its schedule) per parameter group the trainer names.

    Trainable parameters of the loss (e.g. the class centres of a center loss) that no group
    names join the ``main`` group, so they are optimised like the model's.
    """
    config = built.config
    groups: dict[str, list[Any]] = {
        name: list(params) for name, params in built.trainer.optimizer_groups(model).items()
    }
    if built.loss is not None:
        grouped = {id(p) for params in groups.values() for p in _parameters(params)}
        extra = [p for p in built.loss.parameters() if p.requires_grad and id(p) not in grouped]
        if extra:
            main = groups.get("main", [])
            is_dicts = bool(main) and isinstance(main[0], dict)
            groups["main"] = [*main, {"params": extra}] if is_dicts else [*main, *extra]
    optimizers: dict[str, torch.optim.Optimizer] = {}
    schedules: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
    for name, params in groups.items():
        if name == "main":
            opt_config, where = config.optimizer, "optimizer"
        elif name in config.optimizers:
            opt_config, where = config.optimizers[name], f"optimizers.{name}"
        else:
            raise ComponentError(
                f"trainer '{config.trainer.type}' needs an optimizer for parameter group "
                f"{name!r}; add it under 'optimizers: {{{name}: {{name: adamw, lr: 1e-3}}}}'"
            )
        trainable = _trainable(params)
        optimizers[name] = build_optimizer(trainable, opt_config, where)
        schedules[name] = build_schedule(
            optimizers[name], config.schedule, steps_per_epoch, config.train.epochs
        )
    return optimizers, schedules
