"""BYOL trainer: loss against a numpy reference, training step, target modes, state round trip."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from _fixtures import make_ctx
from asklepios_longtail.params import BYOLTrainerParams
from asklepios_longtail.ssl import BYOLTrainer, byol_loss
from asklepios_sdk import Backbone, ComponentError
from torch import nn


class Tiny(Backbone):
    feature_dim = 6

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(5, 6)
        self.classifier = nn.Linear(6, 3)

    def forward(self, batch):
        f = torch.relu(self.body(batch["image"]))
        return {"logits": self.classifier(f), "features": f}


class Step:
    def __init__(self, model, groups):
        self.model = model
        self.loss = None
        self.optimizers = {"main": torch.optim.SGD(groups["main"], lr=0.1)}
        self.epoch = 0
        self.global_step = 0
        self.device = torch.device("cpu")

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss, optimizer="main"):
        loss.backward()

    def step(self, optimizer="main"):
        self.optimizers[optimizer].step()
        self.optimizers[optimizer].zero_grad()


def batch():
    gen = torch.Generator().manual_seed(1)
    return {
        "image": torch.randn(8, 5, generator=gen),
        "image_view2": torch.randn(8, 5, generator=gen),
        "label": torch.zeros(8, dtype=torch.long),
    }


def test_byol_loss_against_numpy():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    cos = (p * t).sum(1) / np.linalg.norm(p, axis=1) / np.linalg.norm(t, axis=1)
    out = byol_loss(torch.tensor(p), torch.tensor(t)).numpy()
    np.testing.assert_allclose(out, 2 - 2 * cos, rtol=1e-10)


@pytest.mark.parametrize("momentum", [False, True])
def test_byol_step_trains_encoder_projector_predictor(momentum):
    model = Tiny()
    trainer = BYOLTrainer(
        BYOLTrainerParams(projection_size=4, projection_hidden_size=8, use_momentum=momentum),
        make_ctx(),
    )
    groups = trainer.optimizer_groups(model)
    assert len(groups["main"]) == 4 + 6 + 6  # encoder + classifier, projector, predictor
    before = model.body.weight.detach().clone()
    result = trainer.train_step(Step(model, groups), batch())
    assert torch.isfinite(result.total) and 0 <= float(result.total.detach()) <= 8
    assert not torch.equal(model.body.weight, before)
    assert model.classifier.weight.grad is None or not model.classifier.weight.grad.any()
    state = trainer.state_dict()
    fresh = BYOLTrainer(trainer.params, make_ctx())
    fresh.optimizer_groups(Tiny())
    fresh.load_state_dict(state)
    for a, b in zip(fresh.predictor.parameters(), trainer.predictor.parameters(), strict=True):
        assert torch.equal(a, b)
    assert (trainer.target is not None) == momentum


def test_byol_needs_two_views():
    model = Tiny()
    trainer = BYOLTrainer(
        BYOLTrainerParams(projection_size=4, projection_hidden_size=8), make_ctx()
    )
    groups = trainer.optimizer_groups(model)
    single = {k: v for k, v in batch().items() if k != "image_view2"}
    with pytest.raises(ComponentError, match="two_view"):
        trainer.train_step(Step(model, groups), single)


def test_info_nce_against_numpy():
    from asklepios_longtail.ssl import info_nce

    rng = np.random.default_rng(0)
    q, k, queue = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(5, 4))
    queue = queue / np.linalg.norm(queue, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    logits = np.concatenate([(qn * kn).sum(1, keepdims=True), qn @ queue.T], axis=1) / 0.05
    logits -= logits.max(1, keepdims=True)
    expected = -(logits[:, 0] - np.log(np.exp(logits).sum(1))).mean()
    out = info_nce(torch.tensor(q), torch.tensor(k), torch.tensor(queue), 0.05)
    assert float(out) == pytest.approx(expected, rel=1e-8)


def test_moco_step_queue_and_momentum():
    from asklepios_longtail.params import MoCoTrainerParams
    from asklepios_longtail.ssl import MoCoTrainer

    model = Tiny()
    trainer = MoCoTrainer(
        MoCoTrainerParams(projection=(5, 3), queue_size=12, momentum=0.9), make_ctx()
    )
    groups = trainer.optimizer_groups(model)
    assert len(groups["main"]) == 4 + 4
    key_before = trainer.key_model.body.weight.detach().clone()
    step = Step(model, groups)
    result = trainer.train_step(step, batch())
    assert torch.isfinite(result.total) and trainer.pointer == 8
    trainer.train_step(step, batch())
    assert trainer.pointer == 4  # wrapped around the queue of 12
    assert torch.allclose(trainer.queue.norm(dim=1), torch.ones(12))
    assert not torch.equal(trainer.key_model.body.weight, key_before)
    assert not torch.equal(trainer.key_model.body.weight, model.body.weight)  # an EMA, not a copy
    state = trainer.state_dict()
    fresh = MoCoTrainer(trainer.params, make_ctx())
    fresh.optimizer_groups(Tiny())
    fresh.load_state_dict(state)
    assert torch.equal(fresh.queue, trainer.queue) and fresh.pointer == 4
