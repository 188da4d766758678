"""Self-supervised pre-training: BYOL (by default without a momentum target, as MONICA).

The trainer owns the projector and predictor MLPs; they join the ``main`` optimizer group and its
state dict, so checkpoints and resume cover them. A linear probe (MONICA's ERM_from_SSL) is a
second stage with ``longtail.crt``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Batch, BuildContext, ComponentError, LossOutput, StepContext
from asklepios_sdk import Trainer as TrainerBase
from torch import Tensor, nn

from asklepios_longtail._heads import feature_dim
from asklepios_longtail.params import BYOLTrainerParams, MoCoTrainerParams

__all__ = [
    "BYOLTrainer",
    "MoCoTrainer",
    "byol_loss",
    "info_nce",
]


def _mlp(width: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, out),
    )


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """Return 2 − 2·cos(prediction, target) per sample (target without gradient)."""
    return 2 - 2 * (F.normalize(prediction, dim=-1) * F.normalize(target.detach(), dim=-1)).sum(-1)


class BYOLTrainer(TrainerBase):
    """Pre-train the encoder with BYOL on two views; the classifier is not trained.

    loss = mean_i [ℓ(q(z¹_i), sg(z²_i)) + ℓ(q(z²_i), sg(z¹_i))], ℓ = 2 − 2 cos, z = projector of
    the pooled features, q the predictor; the target branch is the online network without
    gradient (``use_momentum: false``, MONICA) or its EMA copy.

    References: Grill et al., NeurIPS 2020 (BYOL). MONICA ``SSL/train_BYOL.py`` (byol_pytorch).
    """

    def __init__(self, params: BYOLTrainerParams, ctx: BuildContext) -> None:
        self.params = params
        self.projector: nn.Module | None = None
        self.predictor: nn.Module | None = None
        self.target: nn.Module | None = None
        self.target_projector: nn.Module | None = None

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Build the projector and predictor for the model's features; optimise them with it."""
        width = feature_dim(model, "longtail.byol")
        device = next(model.parameters()).device
        p = self.params
        self.projector = _mlp(width, p.projection_hidden_size, p.projection_size).to(device)
        self.predictor = _mlp(p.projection_size, p.projection_hidden_size, p.projection_size).to(
            device
        )
        if p.use_momentum:
            self.target = copy.deepcopy(model).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        trainable = [q for q in model.parameters() if q.requires_grad]
        return {"main": [*trainable, *self.projector.parameters(), *self.predictor.parameters()]}

    def _views(self, batch: Batch) -> tuple[Batch, Batch]:
        second = batch.get(self.params.second_view_key)
        if second is None:
            raise ComponentError(
                f"longtail.byol needs two views, but the batch has no "
                f"{self.params.second_view_key!r}; add longtail.two_view to data.transforms.train"
            )
        return batch, {**batch, "image": second}

    @torch.no_grad()
    def _update_target(self, model: nn.Module) -> None:
        decay = self.params.moving_average_decay
        assert self.target is not None and self.target_projector is not None
        assert self.projector is not None
        pairs = [(self.target, model), (self.target_projector, self.projector)]
        for target, online in pairs:
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.mul_(decay).add_(o.detach(), alpha=1 - decay)

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        if self.projector is None or self.predictor is None:
            self.optimizer_groups(step.model)
        assert self.projector is not None and self.predictor is not None
        first, second = self._views(batch)
        with step.autocast():
            z1 = self.projector(step.model(first)["features"])
            z2 = self.projector(step.model(second)["features"])
            with torch.no_grad():
                if self.params.use_momentum:
                    assert self.target is not None and self.target_projector is not None
                    t1 = self.target_projector(self.target(first)["features"])
                    t2 = self.target_projector(self.target(second)["features"])
                else:
                    t1, t2 = z1.detach(), z2.detach()
            loss = (byol_loss(self.predictor(z1), t2) + byol_loss(self.predictor(z2), t1)).mean()
        step.backward(loss)
        step.step()
        if self.params.use_momentum:
            self._update_target(step.model)
        return LossOutput(total=loss, terms={"byol": loss.detach()})

    def state_dict(self) -> dict[str, Any]:
        """Return the projector, predictor (and target) weights."""
        state: dict[str, Any] = {}
        for name in ("projector", "predictor", "target", "target_projector"):
            module = getattr(self, name)
            if module is not None:
                state[name] = module.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load weights saved by :meth:`state_dict` into the modules built for the optimizer."""
        for name, value in state.items():
            module = getattr(self, name, None)
            if module is None:
                raise ComponentError(
                    f"longtail.byol: cannot restore {name!r} before optimizer_groups built it"
                )
            module.load_state_dict(value)


def info_nce(query: Tensor, key: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """Return MoCo's InfoNCE: CE over [q·k⁺, q·queue] / t with the positive at index 0."""
    q = F.normalize(query, dim=1)
    k = F.normalize(key, dim=1).detach()
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.T
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class MoCoTrainer(TrainerBase):
    """Pre-train the encoder with MoCo v2: momentum key encoder, queue of negatives, InfoNCE.

    Queries come from the first view through the online encoder and projection, keys from the
    second view through their EMA copies; each step enqueues the keys and drops the oldest.
    The queue starts with random unit vectors (MoCo's code; MONICA fills it from the key encoder
    before training, which a trainer without data access cannot do).

    References: He et al., CVPR 2020; Chen et al., arXiv 2003.04297 (MoCo v2). MONICA
    ``SSL/train_MocoV2.py``, ``losses/MocoV2.py``.
    """

    def __init__(self, params: MoCoTrainerParams, ctx: BuildContext) -> None:
        self.params = params
        self.projector: nn.Module | None = None
        self.key_model: nn.Module | None = None
        self.key_projector: nn.Module | None = None
        self.queue: Tensor | None = None
        self.pointer = 0

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[nn.Parameter]]:
        """Build the projection, the momentum copies and the queue; optimise model + projection."""
        width = feature_dim(model, "longtail.mocov2")
        device = next(model.parameters()).device
        layers: list[nn.Module] = []
        for out in self.params.projection:
            layers += [nn.Linear(width, out), nn.ReLU(inplace=True)]
            width = out
        self.projector = nn.Sequential(*layers[:-1]).to(device)
        self.key_model = copy.deepcopy(model).requires_grad_(False)
        self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)
        queue = torch.randn(self.params.queue_size, width, device=device)
        self.queue = F.normalize(queue, dim=1)
        self.pointer = 0
        trainable = [q for q in model.parameters() if q.requires_grad]
        return {"main": [*trainable, *self.projector.parameters()]}

    @torch.no_grad()
    def _momentum_update(self, model: nn.Module) -> None:
        m = self.params.momentum
        assert self.key_model is not None and self.key_projector is not None
        for target, online in ((self.key_model, model), (self.key_projector, self.projector)):
            assert online is not None
            for t, o in zip(target.parameters(), online.parameters(), strict=True):
                t.mul_(m).add_(o.detach(), alpha=1 - m)

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        assert self.queue is not None
        size = len(self.queue)
        index = (self.pointer + torch.arange(len(keys), device=keys.device)) % size
        self.queue[index] = F.normalize(keys, dim=1)
        self.pointer = int((self.pointer + len(keys)) % size)

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        if self.projector is None:
            self.optimizer_groups(step.model)
        assert self.projector is not None and self.key_model is not None
        assert self.key_projector is not None and self.queue is not None
        second = batch.get(self.params.second_view_key)
        if second is None:
            raise ComponentError(
                f"longtail.mocov2 needs two views, but the batch has no "
                f"{self.params.second_view_key!r}; add longtail.two_view to data.transforms.train"
            )
        with step.autocast():
            query = self.projector(step.model(batch)["features"])
            with torch.no_grad():
                self._momentum_update(step.model)
                key = self.key_projector(self.key_model({**batch, "image": second})["features"])
            loss = info_nce(query, key, self.queue, self.params.temperature)
        step.backward(loss)
        step.step()
        self._enqueue(key.float())
        return LossOutput(total=loss, terms={"info_nce": loss.detach()})

    def state_dict(self) -> dict[str, Any]:
        """Return the projection, key encoder and queue."""
        if self.projector is None:
            return {}
        assert self.key_model is not None and self.key_projector is not None
        return {
            "projector": self.projector.state_dict(),
            "key_model": self.key_model.state_dict(),
            "key_projector": self.key_projector.state_dict(),
            "queue": self.queue,
            "pointer": self.pointer,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved into the modules built for the optimizer."""
        if not state:
            return
        if self.projector is None or self.key_model is None or self.key_projector is None:
            raise ComponentError("longtail.mocov2: cannot restore before optimizer_groups")
        self.projector.load_state_dict(state["projector"])
        self.key_model.load_state_dict(state["key_model"])
        self.key_projector.load_state_dict(state["key_projector"])
        self.queue = state["queue"]
        self.pointer = int(state["pointer"])
