"""Benchmarks of the longtail plugin (spec §8.5), printed as tables of ratios and scores.

1. Long-tailed digits: per method, mean and min-max over 5 seeds of balanced accuracy and
   few-shot recall (3 rarest classes) on the balanced test set; MLP 64-64-10, Adam 1e-2,
   batch 32, 60 epochs, n_c = round(120 * 100^(-c/9)).
2. Index generation time of each sampler for 10 million samples (target <= 1 s).
3. Loss forward+backward time relative to the plain formula written naively (per-sample loop).

Run: ``python bench/longtail_digits.py [--seeds 5] [--quick]``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from asklepios_longtail.augmentations import MixUp
from asklepios_longtail.datasets import DigitsLT
from asklepios_longtail.losses.adjustment import (
    BalancedSoftmaxLoss,
    LADELoss,
    LogitAdjustedLoss,
    SeesawLoss,
    VSLoss,
)
from asklepios_longtail.losses.reweighting import CBLoss, FocalLoss, LDAMLoss, WeightedCELoss
from asklepios_longtail.params import (
    BalancedSoftmaxLossParams,
    CBLossParams,
    DigitsLTParams,
    EffectiveNumberSamplerParams,
    FlexSamplerParams,
    FocalLossParams,
    LADELossParams,
    LDAMLossParams,
    LogitAdjustedLossParams,
    MixUpParams,
    ProgressiveSamplerParams,
    SeesawLossParams,
    SqrtSamplerParams,
    VSLossParams,
    WeightedCELossParams,
)
from asklepios_longtail.samplers import (
    ClassBalancedSampler,
    EffectiveNumberSampler,
    FlexSampler,
    ProgressiveSampler,
    SqrtSampler,
)
from asklepios_sdk import BuildContext, EmptyParams
from torch import nn

EPOCHS = 60


@dataclass
class Method:
    """One benchmark entry: a loss factory plus optional sampler, mixing and post-hoc shift."""

    loss: Callable[[BuildContext], nn.Module]
    sampler: Callable[[BuildContext], Any] | None = None
    posthoc: bool = False
    mixup: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _ce(ctx):
    return WeightedCELoss(WeightedCELossParams(), ctx)


METHODS: dict[str, Method] = {
    "ERM": Method(_ce),
    "RS": Method(_ce, sampler=lambda ctx: ClassBalancedSampler(EmptyParams(), ctx)),
    "RW": Method(lambda ctx: WeightedCELoss(WeightedCELossParams(class_weights="cb"), ctx)),
    "BalancedSoftmax": Method(lambda ctx: BalancedSoftmaxLoss(BalancedSoftmaxLossParams(), ctx)),
    "PosthocLA": Method(_ce, posthoc=True),
    "LA (MONICA sign)": Method(
        lambda ctx: LogitAdjustedLoss(LogitAdjustedLossParams(monica_sign=True), ctx)
    ),
    "Focal": Method(lambda ctx: FocalLoss(FocalLossParams(), ctx)),
    "LDAM-DRW": Method(lambda ctx: LDAMLoss(LDAMLossParams(), ctx)),
}

EXTRA_METHODS: dict[str, Method] = {
    "WeightedSoftmax": Method(
        lambda ctx: WeightedCELoss(WeightedCELossParams(class_weights="log_inverse"), ctx)
    ),
    "CBLoss": Method(lambda ctx: CBLoss(CBLossParams(), ctx)),
    "CBLoss_Focal": Method(lambda ctx: CBLoss(CBLossParams(variant="sigmoid_focal"), ctx)),
    "LA (paper sign)": Method(lambda ctx: LogitAdjustedLoss(LogitAdjustedLossParams(), ctx)),
    "LADE": Method(lambda ctx: LADELoss(LADELossParams(), ctx)),
    "VS": Method(lambda ctx: VSLoss(VSLossParams(), ctx)),
    "DRW-CE": Method(lambda ctx: WeightedCELoss(WeightedCELossParams(drw=True), ctx)),
    "MixUp": Method(_ce, mixup=True),
    "Seesaw": Method(lambda ctx: SeesawLoss(SeesawLossParams(), ctx)),
    "RSG sampler": Method(
        _ce, sampler=lambda ctx: EffectiveNumberSampler(EffectiveNumberSamplerParams(), ctx)
    ),
    "Sqrt sampling": Method(_ce, sampler=lambda ctx: SqrtSampler(SqrtSamplerParams(), ctx)),
    "Progressive": Method(
        _ce, sampler=lambda ctx: ProgressiveSampler(ProgressiveSamplerParams(), ctx)
    ),
}


def scores(logits: torch.Tensor, labels: np.ndarray) -> tuple[float, float]:
    pred = logits.argmax(dim=1).numpy()
    recall = np.array([(pred[labels == c] == c).mean() for c in range(10)])
    return float(recall.mean()), float(recall[-3:].mean())


def train_one(method: Method, seed: int, epochs: int = EPOCHS) -> tuple[float, float]:
    """Train the MLP with ``method`` on the seed's split; return (balanced acc, few recall)."""
    logits, labels = trained_logits(method, seed, epochs)
    return scores(logits, labels)


def trained_logits(
    method: Method, seed: int, epochs: int = EPOCHS
) -> tuple[torch.Tensor, np.ndarray]:
    """Train the MLP with ``method`` on the seed's split; return test logits and labels."""
    data = DigitsLT(DigitsLTParams(seed=seed, val_per_class=0), None)
    facts = data.facts()
    ctx = BuildContext(data=facts, seed=seed, epochs=epochs)
    x = data.split("train").images
    y = data.split("train").labels
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = method.loss(ctx)
    sampler = method.sampler(ctx) if method.sampler else None
    mixup = MixUp(MixUpParams(), ctx) if method.mixup else None
    gen = np.random.default_rng(seed)
    for epoch in range(epochs):
        loss_fn.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
            order = np.fromiter(iter(sampler), dtype=np.int64)
        else:
            order = gen.permutation(len(y))
        for start in range(0, len(order), 32):
            idx = torch.as_tensor(order[start : start + 32])
            batch = {"image": x[idx], "label": y[idx]}
            if mixup is not None:
                batch = mixup(batch)
            loss = loss_fn({"logits": model(batch["image"])}, batch).total
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        logits = model(data.split("test").images)
    if method.posthoc:
        counts = torch.tensor(facts.class_counts, dtype=torch.float32)
        logits = logits - torch.log(counts / counts.max() + 1e-12)
    return logits, data.labels("test")


def digits_table(methods: dict[str, Method], seeds: int) -> dict[str, np.ndarray]:
    """Return, per method, an array (seeds, 2) of balanced accuracy and few-shot recall."""
    return {
        name: np.array([train_one(method, seed) for seed in range(seeds)])
        for name, method in methods.items()
    }


def print_digits(results: dict[str, np.ndarray]) -> None:
    seeds = len(next(iter(results.values())))
    print(f"\n== long-tailed digits (IR 120, balanced test), {seeds} seeds")
    header = ("method", "bal. acc mean", "(min-max)", "few mean", "(min-max)")
    print(f"{header[0]:<18} {header[1]:>13} {header[2]:>15} {header[3]:>9} {header[4]:>15}")
    for name, scores in results.items():
        acc, few = scores[:, 0] * 100, scores[:, 1] * 100
        print(
            f"{name:<18} {acc.mean():13.1f} {f'({acc.min():.1f}-{acc.max():.1f})':>15} "
            f"{few.mean():9.1f} {f'({few.min():.1f}-{few.max():.1f})':>15}"
        )


def sampler_speed(n: int = 10_000_000) -> None:
    """Print the time to generate one epoch of indices for ``n`` samples, per sampler."""
    rng = np.random.default_rng(0)
    counts = np.round(n * 0.5 ** np.arange(20) / 2).astype(np.int64)
    counts[0] += n - counts.sum()
    labels = np.repeat(np.arange(20), counts)
    rng.shuffle(labels)
    from asklepios_sdk import DataFacts

    ctx = BuildContext(data=DataFacts(num_classes=20, labels=labels), epochs=10)
    print(f"\n== sampler index generation, {n:,} samples, 20 classes (target <= 1 s)")
    rng.permutation(n)  # warm-up
    baseline = time.perf_counter()
    rng.permutation(n)
    shuffle = time.perf_counter() - baseline
    print(f"{'numpy permutation':<22} {shuffle:6.2f} s  (baseline)")
    flex = FlexSampler(FlexSamplerParams(), ctx)
    flex.set_accuracy(np.linspace(90, 10, 20))
    samplers = {
        "class_balanced": ClassBalancedSampler(EmptyParams(), ctx),
        "effective_number": EffectiveNumberSampler(EffectiveNumberSamplerParams(), ctx),
        "flex": flex,
        "sqrt": SqrtSampler(SqrtSamplerParams(), ctx),
        "progressive": ProgressiveSampler(ProgressiveSamplerParams(), ctx),
    }
    for name, sampler in samplers.items():
        sampler.epoch_indices(2, np.random.default_rng([0, 2]))  # warm-up (page faults)
        start = time.perf_counter()
        sampler.epoch_indices(3, np.random.default_rng([0, 3]))
        took = time.perf_counter() - start
        print(f"{name:<22} {took:6.2f} s  ({took / shuffle:4.1f}x permutation)")


def _naive_ldam(logits, target, counts, epoch_weight):
    """LDAM written per sample in Python, the naive baseline."""
    m = [c**-0.25 for c in counts]
    m = [0.5 * v / max(m) for v in m]
    total, norm = 0.0, 0.0
    for i in range(logits.shape[0]):
        row = logits[i].clone()
        row[target[i]] = row[target[i]] - m[target[i]]
        w = epoch_weight[target[i]]
        total = total + w * (torch.logsumexp(30 * row, 0) - 30 * row[target[i]])
        norm += float(w)
    return total / norm


def loss_speed(batch: int = 256, classes: int = 100, repeat: int = 20) -> None:
    """Print forward+backward time of LDAM-DRW vs the naive per-sample formula."""
    counts = [int(1000 * 0.95**c) + 1 for c in range(classes)]
    from asklepios_sdk import DataFacts

    ctx = BuildContext(data=DataFacts(num_classes=classes, class_counts=tuple(counts)), epochs=10)
    loss = LDAMLoss(LDAMLossParams(), ctx)
    loss.set_epoch(9)
    weight = loss.current_weight()
    z = torch.randn(batch, classes, requires_grad=True)
    y = torch.randint(0, classes, (batch,))

    def timed(fn):
        start = time.perf_counter()
        for _ in range(repeat):
            z.grad = None
            fn().backward()
        return (time.perf_counter() - start) / repeat

    fast = timed(lambda: loss({"logits": z}, {"label": y}).total)
    naive = timed(lambda: _naive_ldam(z, y, counts, weight))
    value = float(loss({"logits": z}, {"label": y}).total.detach())
    assert math.isclose(value, float(_naive_ldam(z, y, counts, weight).detach()), rel_tol=1e-4)
    print(f"\n== loss forward+backward, batch {batch}, {classes} classes")
    print(
        f"longtail.ldam {fast * 1e3:7.2f} ms, naive per-sample {naive * 1e3:7.2f} ms "
        f"(speed-up {naive / fast:.0f}x)"
    )


def main() -> None:
    """Run every benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="only the spec's eight methods")
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = dict(METHODS) if args.quick else {**METHODS, **EXTRA_METHODS}
    start = time.perf_counter()
    print_digits(digits_table(methods, args.seeds))
    print(f"({len(methods) * args.seeds} trainings in {time.perf_counter() - start:.0f} s)")
    sampler_speed()
    loss_speed()


if __name__ == "__main__":
    main()
