"""Benchmark the engine against a hand-written PyTorch loop, and 2 torchrun ranks against 1.

1. Per-step training time of ``asklepios.engine`` (trainer step, loss wrapper, hooks, metric
   accumulation, progress) vs a plain loop on the same model, data, sampler and seed, measured
   alternately in one process; printed as a ratio (target <= 1.02).
2. Peak memory of both (each in a fresh subprocess: max RSS on CPU, max allocated on CUDA).
3. Throughput of a 2-rank ``torchrun`` run vs a 1-rank run of the same config (gloo on CPU).

Usage: ``python bench/bench_engine.py [--epochs 3] [--model resnet10t|mlp] [--size 32]``. On a
shared, loaded machine set ``OMP_NUM_THREADS=1``: oversubscribed OpenMP threads make every step
tens of times slower and the timings meaningless.
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

REPO = Path(__file__).resolve().parents[1]


def _backbone(args: argparse.Namespace) -> dict[str, Any]:
    if args.model == "mlp":
        return {"type": "core.mlp", "hidden": [512, 512]}
    return {"type": "core.timm", "model_name": args.model}


def _plain_model(args: argparse.Namespace) -> Any:
    import timm
    import torch

    if args.model == "mlp":
        width = 3 * args.size * args.size
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(width, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 512),
            torch.nn.ReLU(),
            torch.nn.Linear(512, 10),
        )
    return timm.create_model(args.model, num_classes=10, in_chans=3)


def _config(args: argparse.Namespace, output_dir: str) -> dict[str, Any]:
    return {
        "name": "bench",
        "seed": 0,
        "output_dir": output_dir,
        "data": {
            "dataset": {"type": "core.digits", "image_size": args.size, "channels": 3},
            "loader": {"batch_size": args.batch_size},
        },
        "model": {"backbone": _backbone(args)},
        "loss": {"type": "core.cross_entropy"},
        "optimizer": {"name": "adamw", "lr": 1e-3},
        "schedule": {"name": "cosine"},
        "evaluators": [{"type": "core.classification"}],
        "train": {"epochs": args.epochs, "device": args.device, "log_every": 10},
    }


def _engine_runner(args: argparse.Namespace) -> Any:
    import torch
    from asklepios.build import build_experiment
    from asklepios.config import validate_config
    from asklepios.engine.distributed import DistInfo, resolve_device
    from asklepios.engine.loop import StageRunner
    from asklepios.engine.progress import RunProgress
    from asklepios.engine.seeding import seed_everything
    from asklepios.engine.state import MetricsLog, RunStateView
    from asklepios.plugins import get_host

    host = get_host()
    config = validate_config(_config(args, tempfile.mkdtemp()), host=host)
    seed_everything(0)
    device = resolve_device(args.device)
    built = build_experiment(config, host.registry, device=str(device))
    view = RunStateView(config, built.ctx, "", 0, 1, True)
    runner = StageRunner(
        built,
        "main",
        Path(tempfile.mkdtemp()),
        DistInfo(),
        device,
        MetricsLog(None),
        RunProgress(False, True),
        host.hook,
        host.caller("step_end"),
        view,
    )
    runner.prepare([])
    torch.set_num_threads(torch.get_num_threads())

    def epoch(e: int) -> float:
        runner._set_epoch(e)
        start, cpu = time.perf_counter(), time.process_time()
        runner.train_epoch(e)
        _sync(device)
        steps = len(runner.train_loader)
        return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps

    return epoch, built


def _built_data(args: argparse.Namespace) -> Any:
    """Return the training split and context only (what the hand-written loop shares)."""
    from types import SimpleNamespace

    from asklepios.builtins.datasets import DigitsDataset
    from asklepios.builtins.params import DigitsDatasetParams
    from asklepios_sdk import BuildContext

    dataset = DigitsDataset(DigitsDatasetParams(image_size=args.size, channels=3))
    return SimpleNamespace(
        train_split=dataset.split("train"), ctx=BuildContext(data=dataset.facts(), seed=0)
    )


def _plain_runner(args: argparse.Namespace, built: Any) -> Any:
    """The same model, data, sampler and seed in a loop written by hand."""
    import torch
    import torch.nn.functional as F
    from asklepios.builtins.samplers import RandomSampler
    from asklepios.engine.distributed import resolve_device
    from asklepios_sdk import EmptyParams

    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = _plain_model(args).to(device)
    sampler = RandomSampler(EmptyParams(), built.ctx)
    loader = torch.utils.data.DataLoader(
        built.train_split,
        batch_size=args.batch_size,
        sampler=sampler,
        pin_memory=device.type == "cuda",
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    steps = len(loader) * args.epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)

    def epoch(e: int) -> float:
        model.train()
        sampler.set_epoch(e)
        start, cpu = time.perf_counter(), time.process_time()
        for batch in loader:
            x = batch["image"].to(device, non_blocking=True)
            y = batch["label"].to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sched.step()
        _sync(device)
        steps = len(loader)
        return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps

    return epoch


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(kind: str, args: argparse.Namespace) -> float:
    """Run ``kind`` (engine or plain) alone in a fresh interpreter; return its peak in MiB."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--epochs",
        "1",
        "--model",
        args.model,
        "--size",
        str(args.size),
        "--batch-size",
        str(args.batch_size),
        "--device",
        args.device,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


def _child(kind: str, args: argparse.Namespace) -> None:
    import resource

    import torch

    if kind == "plain":
        epoch = _plain_runner(args, _built_data(args))
    else:
        epoch, _ = _engine_runner(args)
    epoch(0)
    if args.device != "cpu" and torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_mib": peak}))


def _torchrun(args: argparse.Namespace, nproc: int) -> float:
    """Return training samples per second of a full run on ``nproc`` ranks (gloo on CPU)."""
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(args, tmp)
        config["data"]["loader"]["batch_size"] = args.batch_size // nproc
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config))
        code = (
            "import sys, time, json\n"
            "from asklepios.cli import run_command\n"
            "t = time.perf_counter(); s = run_command(sys.argv[1], quiet=True)\n"
            "print(json.dumps({'seconds': time.perf_counter() - t}))\n"
        )
        script = Path(tmp) / "run.py"
        script.write_text(code)
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(nproc),
            str(script),
            str(path),
        ]
        threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 2) // nproc))
        env = {**os.environ, "OMP_NUM_THREADS": threads}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=True)
        seconds = json.loads(out.stdout.strip().splitlines()[-1])["seconds"]
    from asklepios.builtins.datasets import DigitsDataset
    from asklepios.builtins.params import DigitsDatasetParams

    samples = DigitsDataset(DigitsDatasetParams()).facts().num_samples * args.epochs
    return samples / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="resnet10t", help="a timm model name, or 'mlp'")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", choices=["engine", "plain"])
    parser.add_argument("--skip-torchrun", action="store_true")
    args = parser.parse_args()
    if args.child:
        _child(args.child, args)
        return

    engine_epoch, built = _engine_runner(args)
    plain_epoch = _plain_runner(args, _built_data(args))
    engine_epoch(0)  # warm-up both (allocator, thread pools)
    plain_epoch(0)
    engine_times, plain_times = [], []
    for e in range(1, args.epochs + 1):  # alternate so load changes hit both alike
        engine_times.append(engine_epoch(e))
        plain_times.append(plain_epoch(e))
    engine_ms = statistics.median(t[0] for t in engine_times) * 1e3
    plain_ms = statistics.median(t[0] for t in plain_times) * 1e3
    engine_cpu = statistics.median(t[1] for t in engine_times) * 1e3
    plain_cpu = statistics.median(t[1] for t in plain_times) * 1e3
    print(
        f"model {args.model} {args.size}x{args.size}, batch {args.batch_size}, {args.device}, "
        f"{args.epochs} timed epochs of {len(built.train_split) // args.batch_size + 1} steps"
    )
    print(
        f"per-step time: engine {engine_ms:.2f} ms, hand-written {plain_ms:.2f} ms, "
        f"ratio {engine_ms / plain_ms:.3f} (target <= 1.02)"
    )
    print(
        f"per-step CPU time: engine {engine_cpu:.2f} ms, hand-written {plain_cpu:.2f} ms, "
        f"ratio {engine_cpu / plain_cpu:.3f} (less sensitive to other load on the machine)"
    )
    engine_mem = _peak_memory("engine", args)
    plain_mem = _peak_memory("plain", args)
    unit = "max RSS" if args.device == "cpu" else "max allocated"
    print(
        f"peak memory ({unit}): engine {engine_mem:.0f} MiB, hand-written {plain_mem:.0f} MiB, "
        f"ratio {engine_mem / plain_mem:.3f}"
    )
    if not args.skip_torchrun:
        one = _torchrun(args, 1)
        two = _torchrun(args, 2)
        print(
            f"torchrun throughput: 1 rank {one:.0f} samples/s, 2 ranks {two:.0f} samples/s, "
            f"ratio {two / one:.2f} (same global batch; on a machine with "
            f"{os.cpu_count()} CPU cores)"
        )


if __name__ == "__main__":
    main()
