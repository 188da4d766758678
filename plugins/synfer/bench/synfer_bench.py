"""Benchmark SynFER generation; every timing is a ratio against a baseline of the same run.

1. Cost per generated image on the tiny model (16 px, ``--steps`` DDIM steps, inversion over
   ``--invert``, guidance from ``--start``): UNet evaluations (counted, per image) and wall time
   for plain DDIM (inversion + CFG denoising), + AU adapter, + semantic guidance. Guidance should
   add, per guided step, exactly one UNet forward and backward, one VAE decode and one
   classifier forward and backward; the table reports the counts and the time ratios.
2. Generation throughput of a generation stage (the engine's ``generate:``) under
   ``torchrun`` with 2 ranks against 1, on the CPU (``OMP_NUM_THREADS=1`` per rank): images per
   second from the stage's own timing (target >= 1.8x where 2 cores are free).

Usage: ``python plugins/synfer/bench/synfer_bench.py [--images 16] [--requests 32]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from asklepios_sdk import BuildContext
from asklepios_sdk.testing import host_components

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _tiny import classifier_ref, save_classifier
from asklepios_synfer.au_adapter import AUAdapter
from asklepios_synfer.generation import GuidedGeneration
from asklepios_synfer.ldm import LatentDiffusion
from asklepios_synfer.params import (
    AUAdapterParams,
    GuidedGenerationParams,
    LatentDiffusionParams,
)


def _requests(n: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    return {
        "image": torch.rand(n, 3, 16, 16, generator=gen),
        "text": [f"a photo of a face, request {i}" for i in range(n)],
        "label": torch.arange(n) % 8,
        "meta": {"au": (torch.rand(n, 41, generator=gen) > 0.7).float()},
    }


def per_image(args: argparse.Namespace, weights: Path) -> None:
    """Print UNet evaluations and wall time per image for the three variants."""
    ctx = BuildContext(components=host_components)
    steps = {"steps": args.steps, "invert_steps": args.invert, "guidance_start": args.start}
    variants = {}
    torch.manual_seed(0)
    ldm = LatentDiffusion(LatentDiffusionParams(), ctx)
    variants["plain DDIM"] = GuidedGeneration(GuidedGenerationParams(**steps), ctx).wrap(ldm)
    torch.manual_seed(0)
    au = AUAdapter(AUAdapterParams(), ctx).wrap(LatentDiffusion(LatentDiffusionParams(), ctx))
    variants["+ AU adapter"] = GuidedGeneration(GuidedGenerationParams(**steps), ctx).wrap(au)
    torch.manual_seed(0)
    au2 = AUAdapter(AUAdapterParams(), ctx).wrap(LatentDiffusion(LatentDiffusionParams(), ctx))
    guided = GuidedGenerationParams(**steps, classifier=classifier_ref(weights, 8))
    variants["+ semantic guidance"] = GuidedGeneration(guided, ctx).wrap(au2)
    requests = _requests(args.images)
    seeds = list(range(args.images))
    times: dict[str, float] = {}
    counts: dict[str, dict[str, float]] = {}
    for name, model in variants.items():
        model.eval()
        model.generate_items(requests, seeds)  # warm-up
        model.counts.clear()
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.generate_items(requests, seeds)
            runs.append((time.perf_counter() - start) / args.images)
        times[name] = statistics.median(runs)
        counts[name] = {k: v / (args.images * args.repeats) for k, v in model.counts.items()}
    base = times["plain DDIM"]
    guided_steps = args.invert - args.start
    print(
        f"per image: {args.steps} steps, inversion over {args.invert}, guidance on "
        f"{guided_steps} steps; batch {args.images}, median of {args.repeats}"
    )
    print("| variant | UNet fwd | UNet bwd | VAE decodes | classifier bwd | s/image | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in variants:
        c = counts[name]
        print(
            f"| {name} | {c.get('unet', 0):.0f} | {c.get('unet_backward', 0):.0f} | "
            f"{c.get('vae_decode', 0):.0f} | {c.get('classifier_backward', 0):.0f} | "
            f"{times[name]:.4f} | {times[name] / base:.2f}x |"
        )


def _config(tmp: Path, requests: int) -> Path:
    config = {
        "name": "synfer-bench",
        "seed": 0,
        "output_dir": str(tmp / "runs"),
        "data": {
            "dataset": {
                "type": "synfer.requests",
                "count": requests,
                "class_names": ["zero", "one", "two", "three"],
                "prompt": "a photo of the digit {expression}",
                "au_source": "class_mean",
                "layouts": {"type": "synfer.digits_fetext", "classes": 4, "per_class": 8},
            },
            "loader": {"eval_batch_size": 4},
        },
        "model": {
            "backbone": {"type": "synfer.ldm"},
            "adapters": [
                {"type": "synfer.au_adapter"},
                {"type": "synfer.guided_generation", "steps": 20, "invert_steps": 14},
            ],
        },
        "train": {"device": "cpu"},
        "stages": [{"name": "generate", "generate": {"split": "train"}}],
    }
    path = tmp / "bench.json"
    path.write_text(json.dumps(config))
    return path


def throughput(args: argparse.Namespace) -> None:
    """Print images per second of a generation stage on 1 and 2 torchrun ranks."""
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        config = _config(tmp, args.requests)
        cli = Path(sys.executable).with_name("asklepios")
        for ranks in (1, 2):
            out = tmp / f"out{ranks}"
            command = [
                sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks),
                "--master_port", str(29600 + ranks), str(cli), "run", str(config), "--quiet",
                "--set", f"output_dir={out}",
            ]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            subprocess.run(command, check=True, env=env, capture_output=True, text=True)
            (run_dir,) = out.iterdir()
            summary = json.loads((run_dir / "summary.json").read_text())
            generated = summary["stages"]["generate"]["generated"]
            rates[ranks] = generated["items"] / generated["seconds"]
    print(f"generation stage, {args.requests} requests, CPU, OMP_NUM_THREADS=1 per rank")
    print("| ranks | images/s | speed-up |")
    print("|---|---|---|")
    for ranks, rate in rates.items():
        print(f"| {ranks} | {rate:.2f} | {rate / rates[1]:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--invert", type=int, default=35)
    parser.add_argument("--start", type=int, default=15)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--skip-ranks", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        weights = save_classifier(Path(folder) / "guide.pt", num_classes=8)
        per_image(args, weights)
    if not args.skip_ranks:
        throughput(args)


if __name__ == "__main__":
    main()
