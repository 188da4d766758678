"""`predict` per 1,000 images vs the test stage of `run` on the same data (ratio, same process).

Usage: ``python bench/bench_predict.py [RUN_DIR] [--repeats N]``. Without a run directory a tiny
run (MLP on the bundled digits) is trained first. Both sides see the same model, the same
DataLoader settings (eval batch size, workers) and the same data (the run's test split after the
eval transforms): the baseline is the engine's own test evaluation
(:meth:`asklepios.engine.loop.StageRunner.evaluate`, which also updates the evaluators and the
loss), the candidate is :func:`asklepios.inference.predict` (softmax, rows gathered). Building
the model (:meth:`Run.load`) is timed apart: `asklepios predict` pays it once per call.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import asklepios
import torch
from asklepios.api import Run
from asklepios.engine.distributed import DistInfo
from asklepios.engine.loop import StageRunner
from asklepios.engine.progress import RunProgress
from asklepios.engine.state import MetricsLog, RunStateView
from asklepios.inference import predict

TINY = {
    "name": "bench-predict",
    "data": {"dataset": {"type": "core.digits", "image_size": 32, "test_per_class": 40}},
    "model": {"backbone": {"type": "core.timm", "model_name": "resnet10t"}},
    "train": {"epochs": 1, "device": "cpu"},
}


def _best(times: list[float]) -> float:
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.run_dir is None:
        out = Path(tempfile.mkdtemp(prefix="bench-predict-"))
        run = asklepios.run(TINY, out / "run")
    else:
        run = Run.open(args.run_dir)
    started = time.perf_counter()
    loaded = run.load()
    build_seconds = time.perf_counter() - started
    split = loaded.built.eval_splits["test"]
    n = len(split)
    with tempfile.TemporaryDirectory() as tmp:
        view = RunStateView(
            config=loaded.built.config, context=loaded.built.ctx, output_dir=tmp,
            rank=0, world_size=1, is_main=True,
        )  # fmt: skip
        runner = StageRunner(
            loaded.built, loaded.stage, Path(tmp), DistInfo(), loaded.device, MetricsLog(None),
            RunProgress(enabled=False, quiet=True), None, None, view,
        )  # fmt: skip
        runner.evaluate("test")  # warm-up: first-call allocations, lazy imports
        predict(loaded)
        baseline, candidate = [], []
        for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
            t = time.perf_counter()
            runner.evaluate("test")
            baseline.append(time.perf_counter() - t)
            t = time.perf_counter()
            rows = predict(loaded)
            candidate.append(time.perf_counter() - t)
    assert len(rows) == n
    test_ms = 1000 * _best(baseline) / n * 1000
    predict_ms = 1000 * _best(candidate) / n * 1000
    threads = torch.get_num_threads()
    print(f"run: {run.path}  ({n} test images, stage {loaded.stage}, {threads} threads)")
    print(f"test stage of run : {test_ms:8.1f} ms per 1,000 images (best of {args.repeats})")
    print(f"predict           : {predict_ms:8.1f} ms per 1,000 images (best of {args.repeats})")
    median = statistics.median(candidate) / statistics.median(baseline)
    print(f"ratio predict/test: {predict_ms / test_ms:.2f}  (medians: {median:.2f})")
    print(f"building the model once (Run.load): {build_seconds:.2f} s")


if __name__ == "__main__":
    main()
