"""Benchmark panderm against baselines measured in the same run; prints ratios.

1. The L-BFGS linear probe (``panderm.linear_probe``'s fit) vs scikit-learn's
   ``LogisticRegression(solver="lbfgs")`` on the same cached features: test accuracy (target:
   within 0.5 pt) and fit time (target: ours no slower). Features: D=768 (ViT-B width), K=7
   classes in HAM10000's proportions, Gaussian clusters that overlap (a probe problem that is not
   trivially separable); scikit-learn gets ``C = C_ours / N``, the same objective as
   ``penalty: squared``.
2. Feature-extraction throughput of ``panderm.vit`` (ViT-B/16, 224 px, CLS pooling; impl timm and
   native) vs timm's ``VisionTransformer`` of the same size (target: ratio <= 1.05).
3. A second probe on cached features vs recomputing the features for it (what one feature pass
   shared by every probe of a run saves; target >= 10x).

Run: ``python plugins/panderm/bench/panderm_bench.py [--quick]`` (CPU; --quick: smaller sizes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from asklepios_panderm.params import LinearProbeParams, PanDermViTParams
from asklepios_panderm.probes import LinearProbe, fit_logistic_regression
from asklepios_panderm.vit import PanDermViT
from asklepios_sdk import BuildContext, DataFacts
from timm.models.vision_transformer import VisionTransformer
from torch import nn

HAM_SHARES = np.array([0.11, 0.05, 0.11, 0.01, 0.11, 0.67, 0.014])


def _best_time(function: Callable[[], object], repeats: int) -> float:
    """Return the fastest of ``repeats`` timed calls (after one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _features(n: int, dim: int = 768, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    means = np.random.default_rng(42).normal(0, 0.12, (len(HAM_SHARES), dim))
    labels = rng.choice(len(HAM_SHARES), size=n, p=HAM_SHARES / HAM_SHARES.sum())
    features = means[labels] + rng.normal(0, 1.0, (n, dim))
    return torch.tensor(features, dtype=torch.float32), torch.tensor(labels)


def bench_probe(n_train: int, n_test: int) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = _features(n_train)
    xt, yt = _features(n_test, seed=1)
    classes = int(y.unique().numel())
    cost = x.shape[1] * classes / 100
    print(f"\n1. linear probe on cached features: N={n_train} train, {n_test} test, D=768, K=7")
    print(f"   C = D*K/100 = {cost:.2f}; max_iter 1000 for both")
    rows = []
    for penalty in ("frobenius", "squared"):

        def fit(penalty: str = penalty) -> nn.Linear:
            return fit_logistic_regression(x, y, num_outputs=7, C=cost, penalty=penalty)  # type: ignore[arg-type]

        seconds = _best_time(fit, 2)
        acc = float((fit()(xt).argmax(1) == yt).float().mean())
        rows.append((f"panderm ({penalty})", acc, seconds))
    sklearn = LogisticRegression(C=cost / n_train, solver="lbfgs", max_iter=1000)
    seconds = _best_time(lambda: sklearn.fit(x.numpy(), y.numpy()), 2)
    acc = float((sklearn.predict(xt.numpy()) == yt.numpy()).mean())
    rows.append(("scikit-learn lbfgs (same objective as squared)", acc, seconds))
    base_acc, base_time = rows[-1][1], rows[-1][2]
    for name, acc, seconds in rows:
        print(
            f"   {name:<48} acc {acc:.4f} ({100 * (acc - base_acc):+.2f} pt)  "
            f"fit {seconds:.3f} s  time ratio {seconds / base_time:.2f}"
        )


def _vit_b(impl: str) -> nn.Module:
    params = PanDermViTParams(variant="base", num_classes=0, impl=impl, drop_path_rate=0.0)
    return PanDermViT(params, BuildContext(data=DataFacts(num_classes=0))).eval()


def _timm_vit_b() -> nn.Module:
    return VisionTransformer(
        img_size=224,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        qkv_bias=True,
        init_values=0.1,
        num_classes=0,
        global_pool="token",
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
    ).eval()


def bench_throughput(batch: int, repeats: int) -> None:
    images = torch.randn(batch, 3, 224, 224)
    print(f"\n2. feature extraction, ViT-B/16 at 224 px, batch {batch}, CPU, best of {repeats}")
    timm_model = _timm_vit_b()
    with torch.no_grad():
        base = _best_time(lambda: timm_model(images), repeats)
        print(f"   timm VisionTransformer             {batch / base:7.2f} img/s  ratio 1.00")
        for impl in ("timm", "native"):
            model = _vit_b(impl)
            seconds = _best_time(lambda model=model: model({"image": images}), repeats)
            print(
                f"   panderm.vit (impl {impl:<6})          {batch / seconds:7.2f} img/s  "
                f"time ratio {seconds / base:.2f}"
            )


def bench_second_probe(images_n: int, batch: int) -> None:
    model = _vit_b("timm")
    images = torch.randn(images_n, 3, 224, 224)
    labels = torch.arange(images_n) % 7
    ctx = BuildContext(data=DataFacts(num_classes=7))

    def extract() -> torch.Tensor:
        with torch.no_grad():
            return torch.cat(
                [
                    model({"image": images[i : i + batch]})["features"]
                    for i in range(0, images_n, batch)
                ]
            )

    def probe(features: torch.Tensor) -> None:
        evaluator = LinearProbe(LinearProbeParams(label_fraction=0.5), ctx)
        evaluator.update({"features": features}, {"label": labels})
        evaluator.fit()

    cached = extract()
    recompute = _best_time(lambda: probe(extract()), 1)
    reuse = _best_time(lambda: probe(cached), 3)
    print(f"\n3. a second probe (50% of the labels) over {images_n} ViT-B/16 images, CPU")
    print(f"   recomputing features + probe  {recompute:.3f} s")
    print(f"   probe on cached features      {reuse:.3f} s  speed-up {recompute / reuse:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_probe(1000 if args.quick else 4000, 500 if args.quick else 2000)
    bench_throughput(4 if args.quick else 8, 2 if args.quick else 3)
    bench_second_probe(16 if args.quick else 32, 8)


if __name__ == "__main__":
    main()
