"""The rules of the conformance kit by id and kind, and how one is run on a subject."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from asklepios_sdk.testing._rules_common import (
    rule_build,
    rule_params_naming,
    rule_params_schema,
    rule_pickle,
    rule_registration,
)
from asklepios_sdk.testing._rules_data import (
    _order,
    rule_augmentation_determinism,
    rule_augmentation_shapes,
    rule_dataset_splits,
    rule_sampler_epoch,
    rule_sampler_indices,
    rule_sampler_shards,
    rule_trainer_step,
)
from asklepios_sdk.testing._rules_eval import rule_evaluator_keys, rule_evaluator_reset
from asklepios_sdk.testing._rules_models import _example, rule_forward_backward, rule_loss_output
from asklepios_sdk.testing._subject import Subject, T, _require, _seed_everything

__all__ = ["COMMON_RULES", "KIND_RULES", "run_rule", "run_seeded"]

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
