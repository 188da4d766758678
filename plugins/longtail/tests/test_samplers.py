"""Sampler class-frequency statistics over many epochs (§8.3, §8.7) and sharding."""

from __future__ import annotations

import numpy as np
import pytest
from _fixtures import COUNTS, make_ctx
from asklepios_longtail.params import (
    EffectiveNumberSamplerParams,
    FlexSamplerParams,
    ProgressiveSamplerParams,
    SqrtSamplerParams,
    SwitchSamplerParams,
)
from asklepios_longtail.samplers import (
    ClassBalancedSampler,
    EffectiveNumberSampler,
    FlexSampler,
    ProgressiveSampler,
    SqrtSampler,
    SwitchSampler,
)
from asklepios_sdk import ComponentError, EmptyParams

LABELS = np.repeat(np.arange(4), COUNTS.astype(int))
PI = COUNTS / COUNTS.sum()


def frequencies(sampler, epochs=range(100)) -> np.ndarray:
    drawn = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert len(order) == 625
        drawn.append(order)
    return np.bincount(LABELS[np.concatenate(drawn)], minlength=4) / (625 * len(drawn))


def test_class_balanced_uniform_with_replacement():
    sampler = ClassBalancedSampler(EmptyParams(), make_ctx())
    np.testing.assert_allclose(frequencies(sampler), 0.25, atol=0.01)
    sampler.set_epoch(0)
    order = np.array(list(sampler))
    tail = order[LABELS[order] == 3]
    assert len(tail) > len(np.unique(tail))  # tail samples repeat within an epoch


def test_effective_number_expectation():
    beta = 0.9999
    mass = COUNTS * (1 - beta) / (1 - beta**COUNTS)
    sampler = EffectiveNumberSampler(EffectiveNumberSamplerParams(), make_ctx())
    np.testing.assert_allclose(frequencies(sampler), mass / mass.sum(), atol=0.01)


def test_flex_expectation_and_rebuild_from_metrics():
    sampler = FlexSampler(FlexSamplerParams(), make_ctx())
    sampler.set_epoch(0)
    first = sorted(sampler)
    assert first == list(range(625))  # epoch 0: plain shuffle, each index once
    metrics = {f"val/shot_groups/class_acc_{c}": a for c, a in enumerate((90, 60, 30, 10))}
    sampler.on_evaluation(metrics)
    mass = COUNTS / np.array([90, 60, 30, 10])
    np.testing.assert_allclose(frequencies(sampler, range(1, 101)), mass / mass.sum(), atol=0.01)
    sampler.on_evaluation({f"class_acc_{c}": a for c, a in enumerate((50, 50, 50, 50))})
    assert sampler.updates == 2
    np.testing.assert_allclose(sampler.class_probabilities(5), PI)


def test_flex_zero_accuracy_rules():
    sampler = FlexSampler(FlexSamplerParams(), make_ctx())
    sampler.set_accuracy([90, 0, 30, 10])
    mass = COUNTS / np.array([90, 10, 30, 10])
    np.testing.assert_allclose(sampler.class_probabilities(1), mass / mass.sum())
    strict = FlexSampler(FlexSamplerParams(zero_accuracy="error"), make_ctx())
    with pytest.raises(ComponentError, match=r"classes \[1\] have 0 validation accuracy"):
        strict.set_accuracy([90, 0, 30, 10])


def test_sqrt_and_q_zero():
    mass = np.sqrt(COUNTS)
    np.testing.assert_allclose(
        frequencies(SqrtSampler(SqrtSamplerParams(), make_ctx())), mass / mass.sum(), atol=0.01
    )
    np.testing.assert_allclose(
        frequencies(SqrtSampler(SqrtSamplerParams(q=0), make_ctx()), range(50)), 0.25, atol=0.01
    )


def test_progressive_interpolates_from_prior_to_uniform():
    sampler = ProgressiveSampler(ProgressiveSamplerParams(), make_ctx(epochs=10))
    np.testing.assert_allclose(sampler.class_probabilities(0), PI)
    np.testing.assert_allclose(sampler.class_probabilities(10), 0.25)
    np.testing.assert_allclose(sampler.class_probabilities(4), 0.6 * PI + 0.4 * 0.25)
    drawn = []
    for seed in range(100):
        seeded = ProgressiveSampler(
            ProgressiveSamplerParams(), make_ctx(epochs=10).replace(seed=seed)
        )
        drawn.extend(seeded)
    np.testing.assert_allclose(np.bincount(LABELS[drawn]) / len(drawn), PI, atol=0.01)


def test_switch_fires_at_int_0_8_e():
    sampler = SwitchSampler(SwitchSamplerParams(), make_ctx(epochs=10))
    assert [sampler.rule(e) for e in (7, 8)] == ["shuffle", "effective_number"]
    sampler.set_epoch(7)
    assert sorted(sampler) == list(range(625))
    sampler.set_epoch(8)
    assert sorted(sampler) != list(range(625))


def test_shards_cover_the_epoch_and_epochs_differ():
    ctx = make_ctx()
    ranks = [ClassBalancedSampler(EmptyParams(), ctx.replace(rank=r, world_size=2)) for r in (0, 1)]
    single = ClassBalancedSampler(EmptyParams(), ctx)
    for s in (*ranks, single):
        s.set_epoch(3)
    shards = [list(s) for s in ranks]
    assert len(shards[0]) + len(shards[1]) == 626  # padded to a multiple of the world size
    merged = np.empty(626, dtype=int)
    merged[0::2], merged[1::2] = shards
    assert merged[:625].tolist() == list(single)
    ranks[0].set_epoch(4)
    assert list(ranks[0]) != shards[0]


def test_missing_labels_error():
    from asklepios_sdk import BuildContext

    with pytest.raises(ComponentError, match="needs the training labels"):
        ClassBalancedSampler(EmptyParams(), BuildContext())
