"""Event oversampler (both directions, both modes) and duration-sorted pairs with their trainer."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, EmptyParams
from asklepios_sdk.components import Dataset
from asklepios_unisurv.losses import MMVLoss
from asklepios_unisurv.pairs import PairwiseTrainer, SortedPairsWrapper
from asklepios_unisurv.params import (
    EventBalancedSamplerParams,
    MMVLossParams,
    UniSurvBackboneParams,
)
from asklepios_unisurv.samplers import EventBalancedSampler
from asklepios_unisurv.transformer import UniSurvBackbone
from sklearn.utils import resample


def _ctx(events, **kw):
    return BuildContext(
        data=DataFacts(task="survival", events=tuple(events), num_samples=len(events)), **kw
    )


def _epoch(sampler, epoch=0):
    sampler.set_epoch(epoch)
    return np.array(list(iter(sampler)))


def test_minority_is_oversampled_to_the_majority_either_way():
    events = np.array([1] * 30 + [0] * 70)
    idx = _epoch(EventBalancedSampler(EventBalancedSamplerParams(), _ctx(events)))
    assert len(idx) == 140
    assert (events[idx] == 1).sum() == 70
    np.testing.assert_array_equal(np.sort(idx[events[idx] == 0]), np.arange(30, 100))
    flipped = 1 - events
    idx = _epoch(EventBalancedSampler(EventBalancedSamplerParams(), _ctx(flipped)))
    assert len(idx) == 140 and (flipped[idx] == 0).sum() == 70


def test_faithful_direction_resamples_events_to_the_censored_count():
    events = np.array([1] * 80 + [0] * 20)
    sampler = EventBalancedSampler(EventBalancedSamplerParams(direction="events"), _ctx(events))
    idx = _epoch(sampler)
    assert len(idx) == 40 and (events[idx] == 1).sum() == 20
    expected = resample(np.arange(80), replace=True, n_samples=20, random_state=42)
    np.testing.assert_array_equal(np.sort(idx[events[idx] == 1]), np.sort(expected))


def test_fixed_mode_keeps_the_multiset_and_per_epoch_redraws():
    events = np.array([1] * 10 + [0] * 40)
    fixed = EventBalancedSampler(EventBalancedSamplerParams(), _ctx(events))
    a, b = _epoch(fixed, 0), _epoch(fixed, 1)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a), np.sort(b))
    fresh = EventBalancedSampler(EventBalancedSamplerParams(mode="per_epoch"), _ctx(events))
    c, d = _epoch(fresh, 0), _epoch(fresh, 1)
    assert len(c) == len(d) == 80
    assert not np.array_equal(np.sort(c), np.sort(d))


def test_sampler_shards_across_ranks_and_needs_events():
    events = np.array([1] * 10 + [0] * 40)
    shards = [
        _epoch(
            EventBalancedSampler(EventBalancedSamplerParams(), _ctx(events, rank=r, world_size=2))
        )
        for r in (0, 1)
    ]
    whole = _epoch(EventBalancedSampler(EventBalancedSamplerParams(), _ctx(events)))
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.sort(whole))
    with pytest.raises(ComponentError, match="event"):
        EventBalancedSampler(EventBalancedSamplerParams(), BuildContext())
    stale = BuildContext(data=_ctx(events).data.replace(num_samples=40))
    with pytest.raises(ComponentError, match="num_folds"):
        EventBalancedSampler(EventBalancedSamplerParams(), stale)


class _Survival(Dataset):
    def __init__(self, times, events, features=3):
        gen = torch.Generator().manual_seed(0)
        self.rows = [
            {
                "image": torch.randn(features, generator=gen),
                "time": torch.tensor(float(t)),
                "event": torch.tensor(int(d)),
                "margin": torch.tensor(int(t)),
                "weight": torch.tensor(1.0),
            }
            for t, d in zip(times, events, strict=True)
        ]
        self.times, self.events = np.asarray(times, float), np.asarray(events)

    def split(self, name):
        return self.rows

    def facts(self):
        return DataFacts(
            task="survival", num_features=3, times=tuple(self.times), events=tuple(self.events)
        )


def test_partners_come_from_later_times_uniformly():
    times = np.array([5, 1, 9, 3, 7, 2])
    wrapper = SortedPairsWrapper(EmptyParams(), BuildContext()).wrap(_Survival(times, [1] * 6))
    train = wrapper.split("train")
    assert wrapper.facts().extras["unisurv.sorted_pairs"] is True
    for a in range(6):
        partners = {train.partner_of(a, u) for u in np.linspace(0, 0.999, 50)}
        later = set(np.flatnonzero(times > times[a])) or set(range(6))
        assert partners == later
    sample = train[1]
    assert sample["partner_time"] >= sample["time"]
    assert {"partner_image", "partner_event", "partner_margin"} <= set(sample)
    assert wrapper.split("val") is wrapper.inner.split("val")


class _Step:
    def __init__(self, model, loss):
        self.model, self.loss = model, loss
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        self.optimizers = {"main": self.optimizer}
        self.epoch = self.global_step = 0
        self.device = torch.device("cpu")

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss, optimizer="main"):
        loss.backward()

    def step(self, optimizer="main"):
        self.optimizer.step()
        self.optimizer.zero_grad()


def test_pairwise_trainer_forwards_both_members_and_steps():
    times, events = np.arange(8) + 1, np.array([1, 0] * 4)
    data = SortedPairsWrapper(EmptyParams(), BuildContext()).wrap(_Survival(times, events))
    ctx = BuildContext(data=data.facts().replace(extras={**data.facts().extras, "t_max": 12}))
    model = UniSurvBackbone(
        UniSurvBackboneParams(d_model=8, num_layers=1, num_heads=2, d_ff=8, dropout=0.0), ctx
    )
    batch = torch.utils.data.default_collate([data.split("train")[i] for i in range(8)])
    trainer = PairwiseTrainer(EmptyParams(), ctx)
    seen = {}
    loss = MMVLoss(MMVLossParams(), ctx)

    def spy(outputs, b):
        seen.update(outputs)
        return loss(outputs, b)

    step = _Step(model, spy)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        alone = model({"image": batch["partner_image"]})["logits"]
    result = trainer.train_step(step, batch)
    assert "discordance" in result.terms and torch.isfinite(result.total)
    torch.testing.assert_close(seen["partner_logits"].detach(), alone)
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    with pytest.raises(ComponentError, match="sorted_pairs"):
        PairwiseTrainer(EmptyParams(), BuildContext(data=DataFacts(task="survival")))
