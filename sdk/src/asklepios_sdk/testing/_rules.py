"""The rules of the conformance kit, one function per rule, each raising RuleFailure with why."""

from __future__ import annotations

import copy
import json
import pickle
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torchmetrics
from torch import Tensor, nn

from asklepios_sdk.components import (
    BatchTransform,
    Dataset,
    DatasetWrapper,
    LossOutput,
    SampleTransform,
    Trainer,
    example_batch,
)
from asklepios_sdk.context import BuildContext
from asklepios_sdk.params import EmptyParams, Params
from asklepios_sdk.testing._collect import Entry
from asklepios_sdk.testing._config import Override
from asklepios_sdk.testing._fixtures import CrossEntropy, KitStepContext, TinyBackbone, TinyDataset

__all__ = [
    "COMMON_RULES",
    "KIND_RULES",
    "RuleFailure",
    "Subject",
    "fit_example",
    "run_rule",
    "run_seeded",
]

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


# -- rules every kind shares -------------------------------------------------------------------


def rule_registration(subject: Subject) -> None:
    problems = subject.entry.problems
    _require(not problems, "; ".join(problems))


def rule_build(subject: Subject) -> None:
    component = subject.build()
    kind = subject.entry.kind
    types, wanted = _KIND_TYPES[kind]
    _require(
        isinstance(component, types),
        f"the factory returned {type(component).__name__}; a {kind} must be {wanted}",
    )
    if kind == "adapter":
        _require(callable(getattr(component, "wrap", None)), "an adapter needs wrap(model)")
    if kind == "sampler":
        _require(callable(getattr(component, "set_epoch", None)), "a sampler needs set_epoch()")
    off_cpu = _on_cpu(component)
    _require(not off_cpu, f"built on a device other than ctx.device='cpu': {off_cpu[:3]}")


def rule_params_naming(subject: Subject) -> None:
    reg = subject.entry.registration
    target = reg.target_path.rpartition(":")[2].rpartition(".")[2]
    _require(
        target != "<lambda>",
        "the target is a lambda, which cannot be referenced lazily nor named in messages; "
        "register 'package.module:Class' whose constructor takes (params, ctx)",
    )
    model = reg.params_model
    if model is EmptyParams:
        return
    if target[:1].isupper():
        _require(
            model.__name__ == f"{target}Params",
            f"the params model of {target} is {model.__name__}; name it {target}Params (a "
            f"component that shares another's params: 'class {target}Params(SharedParams)' with "
            "a docstring)",
        )
    else:
        _require(
            model.__name__.endswith("Params"),
            f"the params model {model.__name__} of {target} must end in 'Params'",
        )


def rule_params_schema(subject: Subject) -> None:
    model = subject.params_model
    extra = model.model_config.get("extra")
    _require(extra == "forbid", f"{model.__name__} has extra={extra!r}; derive it from Params")
    try:
        json.dumps(model.model_json_schema())
    except Exception as err:
        raise RuleFailure(
            f"{model.__name__}.model_json_schema() failed ({type(err).__name__}: {err}); use "
            "JSON-friendly field types (numbers, strings, lists, Literal, nested Params)"
        ) from err
    params = subject.params()
    dumped = params.model_dump(mode="json")
    try:
        again = model.model_validate(json.loads(json.dumps(dumped)))
    except Exception as err:
        raise RuleFailure(
            f"{model.__name__} does not survive a JSON round trip (the saved config): {err}"
        ) from err
    _require(again == params, f"{model.__name__} changes in a JSON round trip: {dumped}")


def rule_pickle(subject: Subject) -> None:
    component = subject.build()
    targets = [("component", component)]
    if isinstance(component, DatasetWrapper):
        component.wrap(subject.dataset())
    if isinstance(component, Dataset):
        targets += [(f"split {n!r}", component.split(n)) for n in component.split_names]
    for what, target in targets:
        try:
            restored = pickle.loads(pickle.dumps(target))
        except Exception as err:
            raise RuleFailure(
                f"the {what} does not pickle ({type(err).__name__}: {err}); DataLoader workers "
                "and checkpoints need it: keep lambdas, open files and generators out of attributes"
            ) from err
        _require(type(restored) is type(target), f"the {what} unpickles as another type")


# -- backbones and adapters --------------------------------------------------------------------


def _check_model_output(output: Any, batch_size: int, feature_dim: int) -> dict[str, Tensor]:
    _require(isinstance(output, Mapping), f"forward returned {type(output).__name__}, not a dict")
    _require("logits" in output, f"the output dict has keys {sorted(output)}, no 'logits'")
    logits = output["logits"]
    _require(isinstance(logits, Tensor), "output['logits'] is not a tensor")
    _require(
        logits.dim() >= 1 and logits.shape[0] == batch_size,
        f"output['logits'] has shape {tuple(logits.shape)}; expected batch size {batch_size} first",
    )
    features = output.get("features")
    if isinstance(features, Tensor) and features.dim() == 2 and feature_dim > 0:
        _require(
            features.shape[-1] == feature_dim,
            f"output['features'] has width {features.shape[-1]} but feature_dim is {feature_dim}",
        )
    aux = output.get("aux_losses", {})
    _require(isinstance(aux, Mapping), "output['aux_losses'] must be a dict of scalar tensors")
    for name, value in aux.items():
        _require(
            isinstance(value, Tensor) and value.numel() == 1,
            f"output['aux_losses'][{name!r}] is not a scalar tensor",
        )
    _require(_all_finite(output), "the output has NaN or infinite values on the example batch")
    return dict(output)


def _backward(module: nn.Module, output: Mapping[str, Any]) -> None:
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not trainable:
        return
    logits = output["logits"]
    _require(
        logits.requires_grad,
        "the module has trainable parameters but output['logits'] does not require grad "
        "(is forward running under torch.no_grad()?)",
    )
    total = logits.float().sum() + sum(
        (v.float().sum() for v in output.get("aux_losses", {}).values()), torch.zeros(())
    )
    features = output.get("features")
    if isinstance(features, Tensor) and features.requires_grad:
        total = total + features.float().sum()
    total.backward()
    with_grad = [(n, p.grad) for n, p in trainable if p.grad is not None]
    _require(bool(with_grad), "backward left every trainable parameter without a gradient")
    bad = [n for n, g in with_grad if not bool(torch.isfinite(g).all())]
    _require(not bad, f"non-finite gradients in {bad[:3]}")


def _example(component: Any, method: str, ctx: BuildContext, *args: Any) -> Any:
    maker = getattr(component, method, None)
    try:
        return maker(ctx, *args) if callable(maker) else example_batch(ctx, *args)
    except Exception as err:
        raise RuleFailure(f"{method}(ctx) raised {type(err).__name__}: {err}") from err


def _check_generation(model: Any, ctx: BuildContext) -> None:
    """Check a generative backbone: one str per item, every turn answered, seeded repeatable."""
    batch = _example(model, "example_batch", ctx, 2)
    model.eval()
    try:
        output = model(batch)
        _seed_everything(ctx.seed)
        again = model(batch)
    except Exception as err:
        raise RuleFailure(
            f"forward(example_batch) raised {type(err).__name__}: {err}; a generative backbone "
            "answers the question batch of asklepios_sdk.generation through generate()"
        ) from err
    _require(isinstance(output, Mapping), f"forward returned {type(output).__name__}, not a dict")
    texts, turns = output.get("text"), output.get("turns")
    size = len(batch["text"])
    _require(
        isinstance(texts, list) and len(texts) == size and all(isinstance(t, str) for t in texts),
        f"output['text'] must be a list of {size} strings, got {texts!r:.200}",
    )
    asked = [1 + len(f) for f in batch.get("followups", [[]] * size)]
    _require(
        isinstance(turns, list) and [len(t) for t in turns] == asked,
        f"output['turns'] must hold the answer to every user turn ({asked} per item)",
    )
    _require(output == again, "the same seed gave other answers on the same batch")


def rule_forward_backward(subject: Subject) -> None:
    component = subject.build()
    if getattr(component, "generates_text", False):
        _seed_everything(subject.ctx.seed)
        _check_generation(component, subject.ctx)
        return
    module = component
    if subject.entry.kind == "adapter":
        module = component.wrap(subject.model())
        _require(isinstance(module, nn.Module), "wrap(model) did not return an nn.Module")
    module.train()
    batch = _example(component, "example_batch", subject.ctx, 2)
    size = len(batch["image"]) if "image" in batch else 2
    try:
        output = module(batch)
    except Exception as err:
        raise RuleFailure(
            f"forward(example_batch) raised {type(err).__name__}: {err}; if the component needs "
            "other inputs, override example_batch(ctx) on the class"
        ) from err
    output = _check_model_output(output, size, int(getattr(module, "feature_dim", 0) or 0))
    _backward(module, output)


# -- losses ------------------------------------------------------------------------------------


def rule_loss_output(subject: Subject) -> None:
    loss = subject.build()
    if hasattr(loss, "set_epoch"):
        loss.set_epoch(0)
    outputs, batch = _example(loss, "example_inputs", subject.ctx)
    leaves = [t for t in _tensors(outputs) if t.requires_grad and t.is_leaf]
    _require(bool(leaves), "example_inputs returned no outputs tensor that requires grad")
    try:
        result = loss(outputs, batch)
    except Exception as err:
        raise RuleFailure(f"forward(outputs, batch) raised {type(err).__name__}: {err}") from err
    _require(
        isinstance(result, LossOutput),
        f"forward returned {type(result).__name__}; return asklepios_sdk.LossOutput(total, terms)",
    )
    total = result.total
    _require(
        isinstance(total, Tensor) and total.dim() == 0,
        f"total must be a 0-dim tensor, got {getattr(total, 'shape', type(total).__name__)}",
    )
    _require(bool(torch.isfinite(total)), f"total is not finite: {float(total.detach())}")
    _require(total.requires_grad, "total does not require grad: nothing would be learned")
    _require(bool(result.terms), "terms is empty: name at least one term, e.g. {'ce': ce}")
    _require("loss" not in result.terms, "'loss' is reserved for the total; rename that term")
    for name, term in result.terms.items():
        _require(
            isinstance(term, Tensor) and term.numel() == 1 and bool(torch.isfinite(term).all()),
            f"term {name!r} is not a finite scalar tensor",
        )
    total.backward()
    grads = [t.grad for t in leaves]
    _require(any(g is not None for g in grads), "backward gave the outputs no gradient")
    _require(
        all(bool(torch.isfinite(g).all()) for g in grads if g is not None),
        "backward gave non-finite gradients",
    )


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


# -- evaluators --------------------------------------------------------------------------------


def fit_example(evaluator: Any, outputs: Any, batch: Any) -> None:
    """Fit an evaluator that declares ``fit_split`` on the inputs, as the engine would."""
    if getattr(evaluator, "fit_split", None):
        evaluator.update(outputs, batch)
        evaluator.fit()
        evaluator.reset()


def _update_compute(evaluator: Any, ctx: BuildContext) -> dict[str, Any]:
    outputs, batch = _example(evaluator, "example_inputs", ctx)
    try:
        fit_example(evaluator, outputs, batch)
        evaluator.update(outputs, batch)
        result = evaluator.compute()
    except Exception as err:
        raise RuleFailure(f"update/compute raised {type(err).__name__}: {err}") from err
    _require(isinstance(result, Mapping), f"compute() returned {type(result).__name__}, not dict")
    return dict(result)


def rule_evaluator_keys(subject: Subject) -> None:
    evaluator = subject.build()
    result = _update_compute(evaluator, subject.ctx)
    _require(bool(result), "compute() returned an empty dict")
    declared = tuple(getattr(evaluator, "output_keys", ()) or ())
    if declared:
        _require(
            set(result) == set(declared),
            f"compute() returned keys {sorted(result)}, declared keys {sorted(declared)}",
        )
    for key, value in result.items():
        _require(isinstance(key, str), f"key {key!r} is not a string")
        number = torch.as_tensor(value)
        _require(number.numel() == 1, f"{key!r} is not a scalar (shape {tuple(number.shape)})")
        _require(bool(torch.isfinite(number.double())), f"{key!r} is not finite on example inputs")
        direction = getattr(evaluator, "key_directions", {}).get(key, evaluator.higher_is_better)
        _require(
            direction is not None,
            f"{key!r} has no direction: set higher_is_better or key_directions[{key!r}]",
        )
    unknown = sorted(set(getattr(evaluator, "key_directions", {})) - set(result))
    _require(not unknown, f"key_directions names keys compute() does not return: {unknown}")


def evaluator_ddp_task(subject: Subject) -> tuple[dict[str, Any], dict[str, float]]:
    """Return the 2-rank job's task for this evaluator, and its one-process result."""
    evaluator = subject.build()
    outputs, batch = _example(evaluator, "example_inputs", subject.ctx)
    sizes = {t.shape[0] for t in _tensors(outputs) if t.dim() > 0}
    sizes |= {len(v) for v in outputs.values() if isinstance(v, list)}  # text outputs
    _require(len(sizes) == 1, f"example_inputs outputs have different batch sizes {sizes}")
    (size,) = sizes
    _require(size >= 4, f"example_inputs gives {size} samples; 2 ranks need at least 4")
    outputs = {k: v.detach() if isinstance(v, Tensor) else v for k, v in outputs.items()}
    reference = _update_compute(evaluator, subject.ctx)
    task = {
        "params": dict(subject.override.params),
        "ctx": subject.ctx,
        "inputs": (outputs, batch),
        "batch_size": size,
    }
    return task, {k: float(torch.as_tensor(v).double()) for k, v in reference.items()}


def compare_ddp(reference: Mapping[str, float], synced: Mapping[str, float] | str) -> None:
    """Raise RuleFailure unless the 2-rank results equal the one-process ones."""
    _require(not isinstance(synced, str), f"on 2 gloo ranks: {synced}")
    assert not isinstance(synced, str)
    _require(
        set(synced) == set(reference),
        f"2 ranks return keys {sorted(synced)}, one process {sorted(reference)}",
    )
    differ = {
        k: (reference[k], synced[k])
        for k in reference
        if not np.isclose(reference[k], synced[k], rtol=1e-5, atol=1e-6, equal_nan=True)
    }
    _require(
        not differ,
        f"(one process, 2 ranks) differ: {differ}; declare every state with add_state and the "
        "reduction that combines ranks (sum for counts, cat for per-sample values)",
    )


def rule_evaluator_reset(subject: Subject) -> None:
    evaluator = subject.build()
    defaults = subject.build().metric_state
    first = _update_compute(evaluator, subject.ctx)
    evaluator.reset()
    state = evaluator.metric_state
    _require(state.keys() == defaults.keys(), "reset() changed the set of metric states")
    changed = [k for k in state if not _equal(state[k], defaults[k])]
    _require(not changed, f"reset() left states {changed} away from their defaults")
    again = _update_compute(evaluator, subject.ctx)
    _require(_equal(first, again), "update/compute after reset() differ from the first run")


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


# -- state that a checkpoint must carry ----------------------------------------------------------


def _loss_total(loss: Any, inputs: tuple[Any, Any], epoch: int) -> Tensor:
    loss.set_epoch(epoch)
    torch.manual_seed(0)
    return loss(*inputs).total.detach()


def rule_checkpoint_state(subject: Subject) -> None:
    """A component restored from ``state_dict()`` continues exactly like the one that saved it."""
    fix = (
        "the engine checkpoints a loss or sampler through state_dict()/load_state_dict(): keep "
        "running state of a loss in buffers (register_buffer) or get_extra_state/set_extra_state, "
        "and have a sampler override state_dict/load_state_dict (calling super())"
    )
    first, fresh = subject.build(), subject.build()
    if subject.entry.kind == "sampler":
        _order(first, 1)
        if hasattr(first, "on_evaluation"):
            first.on_evaluation({})
        fresh.load_state_dict(copy.deepcopy(first.state_dict()))
        for epoch in (1, 2):
            _require(
                _order(first, epoch) == _order(fresh, epoch),
                f"epoch {epoch}: a restored sampler yields another order; {fix}",
            )
        return
    inputs = _example(first, "example_inputs", subject.ctx)
    _loss_total(first, inputs, 0)
    _loss_total(first, inputs, 1)
    fresh.load_state_dict(copy.deepcopy(first.state_dict()))
    saved, restored = _loss_total(first, inputs, 1), _loss_total(fresh, inputs, 1)
    _require(
        torch.allclose(saved, restored, rtol=1e-5, atol=1e-6, equal_nan=True),
        f"after state_dict()/load_state_dict() the loss gives {float(restored)}, the original "
        f"{float(saved)}; {fix}",
    )


COMMON_RULES: tuple[str, ...] = (
    "registration",
    "params-naming",
    "build",
    "params-schema",
    "pickle",
)

KIND_RULES: dict[str, tuple[str, ...]] = {
    "backbone": ("forward-backward",),
    "adapter": ("forward-backward",),
    "loss": ("loss-output", "checkpoint-state"),
    "augmentation": ("augmentation-determinism", "augmentation-shapes"),
    "sampler": ("sampler-indices", "sampler-epoch", "sampler-shards", "checkpoint-state"),
    "evaluator": ("evaluator-keys", "evaluator-reset", "evaluator-ddp"),
    "dataset": ("dataset-splits",),
    "trainer": ("trainer-step",),
}

_RULE_FUNCTIONS: dict[str, Callable[[Subject], None]] = {
    "registration": rule_registration,
    "params-naming": rule_params_naming,
    "build": rule_build,
    "params-schema": rule_params_schema,
    "pickle": rule_pickle,
    "forward-backward": rule_forward_backward,
    "checkpoint-state": rule_checkpoint_state,
    "loss-output": rule_loss_output,
    "augmentation-determinism": rule_augmentation_determinism,
    "augmentation-shapes": rule_augmentation_shapes,
    "sampler-indices": rule_sampler_indices,
    "sampler-epoch": rule_sampler_epoch,
    "sampler-shards": rule_sampler_shards,
    "evaluator-keys": rule_evaluator_keys,
    "evaluator-reset": rule_evaluator_reset,
    "dataset-splits": rule_dataset_splits,
    "trainer-step": rule_trainer_step,
}


def run_seeded(subject: Subject, function: Callable[[Subject], T]) -> T:
    """Call ``function(subject)`` with every global generator seeded, then restore them."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[]):
            _seed_everything(subject.ctx.seed)
            return function(subject)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def run_rule(rule: str, subject: Subject) -> None:
    """Check ``rule`` on ``subject`` with CPU-only, seeded torch; raise RuleFailure on a breach."""
    run_seeded(subject, _RULE_FUNCTIONS[rule])
