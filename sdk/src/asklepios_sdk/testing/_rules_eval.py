"""Rules for evaluators: declared keys, reset, and equality over 2 gloo ranks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from asklepios_sdk.context import BuildContext
from asklepios_sdk.testing._rules_models import _example
from asklepios_sdk.testing._subject import RuleFailure, Subject, _equal, _require, _tensors

__all__ = ["compare_ddp", "evaluator_ddp_task", "fit_example"]

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
