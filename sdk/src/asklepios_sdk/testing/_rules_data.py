"""Rules for augmentations, samplers, datasets and trainers."""

from __future__ import annotations

import copy
import pickle
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from asklepios_sdk.components import (
    DatasetWrapper,
    LossOutput,
    SampleTransform,
)
from asklepios_sdk.context import BuildContext
from asklepios_sdk.testing._fixtures import CrossEntropy, KitStepContext
from asklepios_sdk.testing._rules_models import _example
from asklepios_sdk.testing._subject import RuleFailure, Subject, _equal, _require, _seed_everything

# -- augmentations -----------------------------------------------------------------------------


def _augment(component: Any, ctx: BuildContext) -> tuple[dict[str, Any], Callable[[int], Any]]:
    if isinstance(component, SampleTransform):
        sample = _example(component, "example_sample", ctx)
    else:
        sample = _example(component, "example_batch", ctx, 4)
        component.train()

    def run(seed: int) -> Any:
        _seed_everything(seed)
        try:
            return component(copy.deepcopy(sample))
        except Exception as err:
            raise RuleFailure(f"the transform raised {type(err).__name__}: {err}") from err

    return sample, run


def rule_augmentation_determinism(subject: Subject) -> None:
    _, run = _augment(subject.build(), subject.ctx)
    first, second = run(1234), run(1234)
    _require(isinstance(first, Mapping), f"the transform returned {type(first).__name__}, not dict")
    _require(
        _equal(first, second),
        "two runs under the same seed differ: draw randomness from torch's global generator "
        "(or numpy/random, which the engine seeds per worker), not from unseeded sources",
    )


def rule_augmentation_shapes(subject: Subject) -> None:
    component = subject.build()
    sample, run = _augment(component, subject.ctx)
    shapes = {k: tuple(v.shape) for k, v in sample.items() if isinstance(v, Tensor | np.ndarray)}
    declared = component.output_shapes(shapes)
    output = run(0)
    _require(isinstance(output, Mapping), f"the transform returned {type(output).__name__}")
    for key, shape in declared.items():
        _require(key in output, f"the output lacks {key!r}, which output_shapes declares")
        actual = tuple(getattr(output[key], "shape", ()))
        _require(
            actual == tuple(shape),
            f"output[{key!r}] has shape {actual}, declared {tuple(shape)}; override "
            "output_shapes(shapes) if the transform resizes",
        )
    if "label_b" in output:
        label = output.get("label")
        _require("lam" in output, "a mixing transform sets 'label_b' and must set 'lam'")
        _require(
            tuple(getattr(output["label_b"], "shape", ())) == tuple(getattr(label, "shape", ())),
            "'label_b' must have the shape of 'label'",
        )
        lam = torch.as_tensor(output["lam"], dtype=torch.float64)
        _require(
            bool(((lam >= 0) & (lam <= 1)).all()), f"'lam' must lie in [0, 1], got {lam.tolist()}"
        )


# -- samplers ----------------------------------------------------------------------------------


def _sampler(subject: Subject, rank: int = 0, world_size: int = 1) -> Any:
    ctx = subject.ctx.replace(rank=rank, world_size=world_size)
    return Subject(subject.entry, subject.override, ctx).build()


def _order(sampler: Any, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return [int(i) for i in sampler]


def rule_sampler_indices(subject: Subject) -> None:
    sampler = _sampler(subject)
    num_samples = subject.ctx.data.num_samples
    order = _order(sampler, 0)
    _require(len(order) == len(sampler), f"yielded {len(order)} indices, len() is {len(sampler)}")
    _require(bool(order), "yielded no index")
    bad = [i for i in order if not 0 <= i < num_samples]
    _require(not bad, f"indices outside [0, {num_samples}): {bad[:5]}")


def rule_sampler_epoch(subject: Subject) -> None:
    sampler = _sampler(subject)
    first = _order(sampler, 0)
    _require(first == _order(sampler, 0), "iterating epoch 0 twice gives two orders")
    later = _order(sampler, 1)
    fresh = _order(_sampler(subject), 1)
    _require(
        later == fresh,
        "epoch 1 differs between a sampler that ran epoch 0 and a fresh one: derive the order "
        "from (seed, epoch) only, so resumed runs see the same data",
    )


def rule_sampler_shards(subject: Subject) -> None:
    for epoch in (0, 1):
        whole = _order(_sampler(subject), epoch)
        shares = [_order(_sampler(subject, rank, 2), epoch) for rank in (0, 1)]
        lengths = [len(s) for s in shares]
        _require(
            lengths[0] == lengths[1],
            f"epoch {epoch}: ranks 0/1 of 2 get {lengths} indices; equal shares keep DDP in step",
        )
        union = Counter(shares[0]) + Counter(shares[1])
        missing = Counter(whole) - union
        _require(
            not missing,
            f"epoch {epoch}: the two ranks miss {sorted(missing.elements())[:5]} of the one-rank "
            "order: draw the order globally from (seed, epoch), then split it by rank",
        )
        padding = sum(union.values()) - len(whole)
        _require(
            0 <= padding < 2,
            f"epoch {epoch}: the ranks together yield {padding} indices more than one rank alone",
        )


# -- datasets and trainers ---------------------------------------------------------------------


def _check_collate(split: Any, name: str) -> None:
    """A split that declares a collate (``collate_fn``) must batch its first items into a dict."""
    from asklepios_sdk.sequences import split_collate

    collate = split_collate(split)
    if collate is None:
        return
    try:
        pickle.dumps(collate)
        batch = collate([split[i] for i in range(min(2, len(split)))])
    except Exception as err:
        raise RuleFailure(
            f"split {name!r}: its collate_fn {collate!r} failed on the first items "
            f"({type(err).__name__}: {err}); DataLoader workers need it picklable and the engine "
            "batches every split with it"
        ) from err
    _require(
        isinstance(batch, Mapping), f"split {name!r}: collate_fn returned {type(batch).__name__}"
    )


def rule_dataset_splits(subject: Subject) -> None:
    dataset = subject.build()
    if isinstance(dataset, DatasetWrapper):
        dataset = dataset.wrap(subject.dataset())
    facts = dataset.facts()
    _require(type(facts).__name__ == "DataFacts", "facts() must return asklepios_sdk.DataFacts")
    for name in dataset.split_names:
        split = dataset.split(name)
        _require(len(split) > 0, f"split {name!r} is empty")
        item = split[0]
        _require(isinstance(item, Mapping), f"split {name!r} yields {type(item).__name__}")
        _check_collate(split, name)
        labels = dataset.labels(name)
        if labels is None:
            continue
        _require(
            len(labels) == len(split),
            f"labels({name!r}) has {len(labels)} entries for {len(split)} samples",
        )
        for index in range(min(4, len(split))):
            sample = split[index]
            if "label" in sample:
                _require(
                    int(sample["label"]) == int(labels[index]),
                    f"labels({name!r})[{index}] is {labels[index]}, the sample says "
                    f"{int(sample['label'])}",
                )


def rule_trainer_step(subject: Subject) -> None:
    trainer = subject.build()
    model = subject.model()
    groups = trainer.optimizer_groups(model)
    _require(isinstance(groups, Mapping) and bool(groups), "optimizer_groups returned no group")
    optimizers = {name: torch.optim.SGD(list(params), lr=0.1) for name, params in groups.items()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = subject.override.loss(subject.ctx) if subject.override.loss else CrossEntropy()
    step = KitStepContext(model, loss, optimizers)
    batch = _example(trainer, "example_batch", subject.ctx, 4)
    trainer.set_epoch(0)
    model.train()
    try:
        result = trainer.train_step(step, batch)
    except Exception as err:
        raise RuleFailure(f"train_step raised {type(err).__name__}: {err}") from err
    _require(isinstance(result, LossOutput), "train_step must return a LossOutput")
    _require(bool(torch.isfinite(result.total.detach()).all()), "train_step's total is not finite")
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    _require(bool(changed), "train_step left every parameter unchanged (no optimiser step?)")
