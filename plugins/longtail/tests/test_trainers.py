"""Trainers: SAM ρ schedule and restore, BBN pairs, ERM mode leak, NCM collection (§8.2, §8.6)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from _fixtures import COUNTS, make_ctx
from asklepios_longtail.adapters import BBNHead
from asklepios_longtail.losses.reweighting import WeightedCELoss
from asklepios_longtail.params import (
    BBNHeadParams,
    BBNPairsSamplerParams,
    BBNTrainerParams,
    CollectTrainerParams,
    ERMTrainerParams,
    NCMClassifierParams,
    PosthocLAParams,
    SAMTrainerParams,
    WeightedCELossParams,
)
from asklepios_longtail.posthoc import NCMClassifier, PosthocLA
from asklepios_longtail.samplers import BBNPairsSampler
from asklepios_longtail.trainers import (
    BBNTrainer,
    CollectTrainer,
    ERMTrainer,
    SAMTrainer,
    sam_rho,
    split_pairs,
)
from asklepios_sdk import Backbone
from torch import nn

LABELS = np.repeat(np.arange(4), COUNTS.astype(int))


class Tiny(Backbone):
    feature_dim = 4

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU())
        self.classifier = nn.Linear(4, 4)

    def forward(self, batch):
        f = self.body(batch["image"])
        return {"logits": self.classifier(f), "features": f}


class Step:
    """A minimal StepContext: plain backward and one optimizer step."""

    def __init__(self, model, loss, epoch=0, lr=0.1):
        self.model = model
        self.loss = loss
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.optimizers = {"main": torch.optim.SGD(trainable, lr=lr)} if trainable else {}
        self.epoch = epoch
        self.global_step = 0
        self.device = torch.device("cpu")

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss, optimizer="main"):
        loss.backward()

    def step(self, optimizer="main"):
        self.optimizers[optimizer].step()
        self.optimizers[optimizer].zero_grad()


def data(n=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, generator=gen), "label": torch.arange(n) % 4}


def ce():
    return WeightedCELoss(WeightedCELossParams(), make_ctx())


def test_sam_rho_schedule():
    rhos = [sam_rho(e) for e in (0, 4, 5, 59, 60, 89)]
    assert rhos == [0.05, 0.05, 0.1, 0.1, 0.5, 0.5]
    trainer = SAMTrainer(SAMTrainerParams(), make_ctx(epochs=90))
    trainer.set_epoch(60)
    assert trainer.rho == 0.5


def test_sam_first_step_and_restore_leave_parameters_unchanged():
    model = Tiny()
    trainer = SAMTrainer(SAMTrainerParams(rhos=(0.5, 0.5, 0.5)), make_ctx())
    params = list(model.parameters())
    before = torch.cat([p.detach().flatten().clone() for p in params])
    ce()(model(data()), data()).total.backward()
    grads = torch.cat([p.grad.flatten() for p in params])
    saved = trainer.first_step(params)
    moved = torch.cat([p.detach().flatten() for p in params])
    assert torch.allclose(moved - before, 0.5 * grads / grads.norm(), atol=1e-6)
    # undoing the step by subtraction is not exact in float32 on these weights ...
    eps = 0.5 * grads / torch.norm(torch.stack([p.grad.norm() for p in params]))
    assert not torch.equal((before + eps) - eps, before)
    trainer.restore(params, saved)
    # ... MONICA's SAM puts the saved weights back, bit for bit
    assert torch.equal(torch.cat([p.detach().flatten() for p in params]), before)


def test_sam_step_uses_the_perturbed_gradient():
    model, reference = Tiny(), Tiny()
    reference.load_state_dict(model.state_dict())
    trainer = SAMTrainer(SAMTrainerParams(rhos=(0.5, 0.5, 0.5)), make_ctx())
    trainer.train_step(Step(model, ce()), data())
    # reference (MONICA optimizers/SAM.py): save w, climb to w + ε, take the gradient there,
    # put w back, step with that gradient
    params = list(reference.parameters())
    ce()(reference(data()), data()).total.backward()
    norm = torch.norm(torch.stack([p.grad.norm() for p in params]))
    old = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            p.add_(p.grad * (0.5 / (norm + 1e-12)))
            p.grad = None
    ce()(reference(data()), data()).total.backward()
    with torch.no_grad():
        for p, w in zip(params, old, strict=True):
            p.copy_(w)
            p.sub_(0.1 * p.grad)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_erm_mode_leak_flag():
    model = PosthocLA(PosthocLAParams(), make_ctx()).wrap(Tiny())
    leak = ERMTrainer(ERMTrainerParams(eval_mode_after_epoch0=True), make_ctx())
    model.train()
    leak.train_step(Step(model, ce(), epoch=0), data())
    assert model.model.training
    leak.train_step(Step(model, ce(), epoch=1), data())
    assert not model.model.body[1].training  # BatchNorm runs on running statistics
    assert model.training  # the evaluation-time adapter is not switched on in training
    model.train()
    ERMTrainer(ERMTrainerParams(), make_ctx()).train_step(Step(model, ce(), epoch=3), data())
    assert model.model.training


def test_bbn_pairs_sampler_streams_and_shards():
    ctx = make_ctx()
    sampler = BBNPairsSampler(BBNPairsSamplerParams(), ctx)
    order = np.array(list(sampler))
    assert len(order) == 1250
    assert sorted(order[0::2]) == list(range(625))  # stream a: plain shuffle
    freq = []
    for epoch in range(100):
        sampler.set_epoch(epoch)
        freq.append(np.array(list(sampler))[1::2])
    balanced = np.bincount(LABELS[np.concatenate(freq)], minlength=4) / (625 * 100)
    np.testing.assert_allclose(balanced, 0.25, atol=0.01)
    ranks = [
        BBNPairsSampler(BBNPairsSamplerParams(), ctx.replace(rank=r, world_size=2)) for r in (0, 1)
    ]
    shard = np.array(list(ranks[0]))
    assert len(shard) == 626
    both = np.concatenate([shard[0::2], np.array(list(ranks[1]))[0::2]])
    assert set(both.tolist()) == set(range(625))


def test_bbn_trainer_mixes_the_two_streams():
    trainer = BBNTrainer(BBNTrainerParams(alpha_schedule="monica"), make_ctx(epochs=50))
    trainer.set_epoch(25)
    assert trainer.alpha == pytest.approx(0.9424)
    model = BBNHead(BBNHeadParams(), make_ctx()).wrap(Tiny())
    batch = data(8)
    first, _ = split_pairs(batch)
    assert torch.equal(first["label"], batch["label"][0::2])
    seen = {}

    def loss(outputs, b):
        seen.update(b)
        return ce()(outputs, b)

    result = trainer.train_step(Step(model, loss), batch)
    assert torch.isfinite(result.total)
    assert float(seen["lam"]) == pytest.approx(0.9424)
    assert torch.equal(seen["label_b"], batch["label"][1::2])
    default = BBNTrainer(BBNTrainerParams(), make_ctx(epochs=50))
    default.set_epoch(49)
    assert default.alpha == pytest.approx(1 - (49 / 50) ** 2)


def test_collect_trainer_fits_ncm_without_training():
    model = NCMClassifier(NCMClassifierParams(), make_ctx()).wrap(Tiny())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = CollectTrainer(CollectTrainerParams(), make_ctx())
    step = Step(model, ce())
    assert trainer.optimizer_groups(model) == {}
    for seed in range(3):
        trainer.train_step(step, data(8, seed))
    assert len(model._features) == 3
    step.epoch = 1
    trainer.train_step(step, data(8, 0))
    assert len(model._features) == 1  # a new epoch starts a new collection
    model.eval()
    logits = model(data(8, 0))["logits"]
    assert logits.shape == (8, 4) and torch.all(logits <= 0)
    for key, value in before.items():
        if key in ("mean", "centroids"):
            continue
        assert torch.equal(model.state_dict()[key], value)
