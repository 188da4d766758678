"""PanDerm's fine-tuning step: layer-decay parameter groups and BEiT's per-step schedule (§6.4).

Groups: a parameter of layer ``id`` gets ``lr_scale = layer_decay^(L + 1 - id)`` (``id`` 0 for
the patch embedding, ``cls_token``, ``pos_embed``; ``i + 1`` for ``blocks.i``; ``L + 1`` for the
rest: head, ``fc_norm``, relative position bias, decoder), and weight decay unless the parameter
is 1-D, a bias, ``pos_embed`` or ``cls_token``. Every step sets each group's rate to
``schedule[step] * lr_scale``: a linear warm-up from ``warmup_lr`` (``numpy.linspace``, as
BEiT's ``cosine_scheduler``) then a cosine to ``min_lr``, with the configured optimizer ``lr``
as the base. Forward, loss and backward run under the engine's autocast and grad scaler (AMP).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from asklepios_sdk import Batch, BuildContext, LossOutput, StepContext, Trainer
from torch import nn

from asklepios_panderm.params import FinetuneTrainerParams

__all__ = ["FinetuneTrainer", "cosine_schedule", "layer_decay_groups"]


def cosine_schedule(
    base: float,
    final: float,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0,
    warmup_start: float = 0.0,
) -> np.ndarray:
    """Return BEiT's per-step rates: ``linspace(warmup_start, base, W)``, then cosine to ``final``.

    ``W = int(warmup_epochs * steps_per_epoch)``; the array has ``epochs * steps_per_epoch`` rates.
    """
    warmup = int(warmup_epochs * steps_per_epoch)
    total = epochs * steps_per_epoch
    warmup = min(warmup, total)
    head = np.linspace(warmup_start, base, warmup) if warmup > 0 else np.array([])
    iters = np.arange(total - warmup)
    tail = np.array(
        [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / len(iters))) for i in iters]
    )
    return np.concatenate((head, tail))


def layer_decay_groups(
    model: nn.Module, layer_decay: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Return torch param groups with ``lr_scale`` per layer and weight decay per parameter kind.

    The layer of a parameter comes from the first module (the model or one it wraps) that has
    ``layer_id(name)`` and ``num_layers`` (``panderm.vit``, ``panderm.upernet``); a model without
    one counts as a single top layer.
    """
    owner, prefix = _layer_owner(model)
    skip: set[str] = set()
    if owner is not None and hasattr(owner, "no_weight_decay"):
        skip = {prefix + n for n in owner.no_weight_decay()}
    num_layers = int(getattr(owner, "num_layers", 0))
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not (param.ndim == 1 or name.endswith(".bias") or name in skip)
        if owner is not None and name.startswith(prefix):
            lid = owner.layer_id(name[len(prefix) :])
        else:
            lid = num_layers + 1
        key = (lid, decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "layer_id": lid,
                "lr_scale": layer_decay ** (num_layers + 1 - lid),
                "weight_decay": weight_decay if decay else 0.0,
            }
        groups[key]["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def _layer_owner(model: nn.Module) -> tuple[Any, str]:
    for name, module in model.named_modules():
        if callable(getattr(module, "layer_id", None)) and hasattr(module, "num_layers"):
            return module, f"{name}." if name else ""
    return None, ""


class FinetuneTrainer(Trainer):
    """Fine-tune with layer-wise LR decay (0.65), warm-up + cosine per step, AMP via the engine.

    The optimizer comes from the config (PanDerm: ``adamw``, ``lr: 5e-4``, ``eps: 1e-8``); its
    ``weight_decay`` is replaced per group by this trainer's. Leave the config's ``schedule`` at
    ``constant`` (the default) unless ``schedule: false``.
    """

    def __init__(self, params: FinetuneTrainerParams, ctx: BuildContext) -> None:
        self.params = params
        self.epochs = int(ctx.epochs)
        self.steps_per_epoch = int(ctx.steps_per_epoch or 1)
        self._schedule: np.ndarray | None = None
        self._schedule_base = math.nan

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[dict[str, Any]]]:
        """Return one ``main`` optimizer with a param group per (layer, decay) pair."""
        p = self.params
        return {"main": layer_decay_groups(model, p.layer_decay, p.weight_decay)}

    def rate(self, base: float, step: int) -> float:
        """Return the scheduled base rate at optimiser step ``step`` (clamped to the last)."""
        p = self.params
        if self._schedule is None or self._schedule_base != base:
            self._schedule = cosine_schedule(
                base, p.min_lr, self.epochs, self.steps_per_epoch, p.warmup_epochs, p.warmup_lr
            )
            self._schedule_base = base
        if not len(self._schedule):
            return base
        return float(self._schedule[min(step, len(self._schedule) - 1)])

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        optimizer = step.optimizers["main"]
        if self.params.schedule:
            rate = self.rate(float(optimizer.defaults["lr"]), step.global_step)
            for group in optimizer.param_groups:
                group["lr"] = rate * float(group.get("lr_scale", 1.0))
        with step.autocast():
            outputs = step.model(batch)
            result = step.loss(outputs, batch)
        step.backward(result.total)
        step.step()
        return result
