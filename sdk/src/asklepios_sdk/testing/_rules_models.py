"""Rules for backbones, adapters (forward/backward, generation) and losses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from asklepios_sdk.components import (
    LossOutput,
    example_batch,
)
from asklepios_sdk.context import BuildContext
from asklepios_sdk.testing._subject import (
    RuleFailure,
    Subject,
    _all_finite,
    _require,
    _seed_everything,
    _tensors,
)

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
