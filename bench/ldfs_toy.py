"""Benchmark LDFS on the toy CLIP space: real-only probe vs LADS-style synthesis vs LDFS.

For each seed: the spec's toy space (d = 64, C = 5, 200 source images per class, unseen domain
"sketch"), stage 1 for 300 steps of 128 (AdamW 1e-3, wd 0.005, grad clip 1), then the check-5
softmax probe (full-batch gradient descent, lr 0.1, wd 0.05, 300 steps) on real features only or on
real + one synthetic draw per image. Prints unseen-domain and source accuracy (mean ± sd over
seeds), the stage-1 training time, and the cost of ``ldfs.feature_synthesis`` per step as a ratio
of one linear-probe training step on the same batch. Asserts nothing.

Usage: ``python bench/ldfs_toy.py [--seeds 5] [--steps 300]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_ldfs.augmentations import FeatureSynthesis, TextNoise
from asklepios_ldfs.datasets import ToyClipSpace
from asklepios_ldfs.heads import FeatureBackbone
from asklepios_ldfs.losses import SynthesisObjective
from asklepios_ldfs.params import (
    FeatureBackboneParams,
    FeatureSynthesisParams,
    LDFSSynthesizerParams,
    SynthesisObjectiveParams,
    TextNoiseParams,
    ToyClipSpaceParams,
)
from asklepios_ldfs.synthesizer import LDFSSynthesizer
from asklepios_sdk import BuildContext

METHODS = {
    # LADS's own loss: directional term on the raw MLP output, class consistency against the
    # fixed plain class text ("a photo of a {c}"), no temperature, 1/count class weights
    "lads": (
        {"arch": "lads"},
        {
            "text_guided": {
                "cc_temperature": None,
                "cc_classes": "class_text",
                "class_weighted": True,
            },
            "pairwise": {"weight": 0.0},
        },
        0.0,
    ),
    # the same with the source prompts as class text (this plugin's earlier LADS setting)
    "lads_src": (
        {"arch": "lads"},
        {
            "text_guided": {"cc_temperature": None, "cc_classes": "source", "class_weighted": True},
            "pairwise": {"weight": 0.0},
        },
        0.0,
    ),
    "ldfs": ({}, {}, 0.1),
}


def train_stage1(data, ctx, method, steps, batch_size=128):
    synth_params, loss_params, sigma = METHODS[method]
    model = LDFSSynthesizer(LDFSSynthesizerParams(**synth_params), ctx).wrap(
        FeatureBackbone(FeatureBackboneParams(), ctx)
    )
    objective = SynthesisObjective(SynthesisObjectiveParams(**loss_params), ctx)
    noise = TextNoise(TextNoiseParams(sigma=sigma), ctx)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.005)
    train = data.split("train")
    started = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(train), (batch_size,))
        batch = noise({"image": train.features[idx], "label": train.labels[idx]})
        loss = objective(model(batch), batch).total
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return model.eval(), time.perf_counter() - started


def probe(x, y, tests, classes=5, steps=300, lr=0.1, wd=0.05):
    w, b = np.zeros((x.shape[1], classes)), np.zeros(classes)
    onehot = np.eye(classes)[y]
    for _ in range(steps):
        logits = x @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot) / len(y)
        w -= lr * (x.T @ grad + wd * w)
        b -= lr * grad.sum(0)
    return [float(np.mean((xt @ w + b).argmax(1) == yt)) for xt, yt in tests]


def synthesis_cost_ratio(model, ctx, repeats=200, batch_size=256):
    """Time of one feature_synthesis call / time of one linear-probe step on the real batch."""
    augment = FeatureSynthesis(FeatureSynthesisParams(synthesizer_file="in-memory"), ctx)
    augment.attach(model.net)
    gen = torch.Generator().manual_seed(0)
    batch = {
        "image": F.normalize(torch.randn(batch_size, 64, generator=gen), dim=-1),
        "label": torch.randint(0, 5, (batch_size,), generator=gen),
    }
    head = torch.nn.Linear(64, 5)
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)

    def classifier_step():
        loss = F.cross_entropy(head(batch["image"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    timings = {"synthesis": [], "classifier": []}
    for _ in range(repeats):  # alternate so that load changes hit both equally
        for name, call in (("synthesis", lambda: augment(batch)), ("classifier", classifier_step)):
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    return statistics.median(timings["synthesis"]) / statistics.median(timings["classifier"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {name: {"target": [], "source": [], "seconds": []} for name in ("real", *METHODS)}
    ratio = None
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        data = ToyClipSpace(ToyClipSpaceParams(seed=seed))
        ctx = BuildContext(data=data.facts(), seed=seed)
        train, test = data.split("train"), data.split("test")
        x, y = train.features.numpy().astype(np.float64), train.labels.numpy()
        tests = [
            (test.features[test.domains == k].numpy(), test.labels[test.domains == k].numpy())
            for k in (1, 0)
        ]
        target, source = probe(x, y, tests)
        rows["real"]["target"].append(target)
        rows["real"]["source"].append(source)
        for method in METHODS:
            model, seconds = train_stage1(data, ctx, method, args.steps)
            with torch.no_grad():
                out = model({"image": train.features, "label": train.labels})["synthetic"]
            synthetic = out[:, 0, 0].numpy().astype(np.float64)
            target, source = probe(np.vstack([x, synthetic]), np.concatenate([y, y]), tests)
            rows[method]["target"].append(target)
            rows[method]["source"].append(source)
            rows[method]["seconds"].append(seconds)
            if method == "ldfs" and ratio is None:
                ratio = synthesis_cost_ratio(model, ctx)

    def fmt(values):
        if not values:
            return "-"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{100 * statistics.mean(values):5.1f} ± {100 * sd:4.1f}"

    print(f"toy CLIP space, {args.seeds} seeds, stage 1 = {args.steps} steps of 128")
    print(f"{'method':<10}{'unseen acc %':>16}{'source acc %':>16}{'stage-1 s':>12}")
    for name, row in rows.items():
        seconds = f"{statistics.mean(row['seconds']):.2f}" if row["seconds"] else "-"
        print(f"{name:<10}{fmt(row['target']):>16}{fmt(row['source']):>16}{seconds:>12}")
    print(f"feature_synthesis per step / linear-probe step (B = 256, K = M = 1): {ratio:.2f}x")


if __name__ == "__main__":
    main()
