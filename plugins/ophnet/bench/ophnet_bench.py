"""Benchmark the OphNet plugin; every timing is a ratio against a baseline of the same run.

1. ``ophnet.tal_map`` (update on batches of 8 videos as a loader gives them, then compute) on
   1,000 videos x 100 predictions against two per-prediction Python loops of the same definition
   (the reference's structure with a numpy tIoU per prediction, and plain Python floats); best of
   several calls each; the values must be identical (to 1e-9) and the target is >= 20x faster.
2. MS-TCN training step per video at T = 2,304 feature steps of 1,408 channels (the benchmark's
   VideoMAEv2 sequence length), the published 4 x 10 x 64 model against a one-stage model of the
   same width, in ms per video and as a ratio; ActionFormer's step (OphNet's operation config:
   width 512, window 19, 107 classes, 20 actions per video) on the same input, as a ratio to
   MS-TCN's.
3. The synthetic example configs (MS-TCN and ActionFormer): test average mAP after their
   configured epochs (MS-TCN's: ``--epochs``).

Usage: ``python plugins/ophnet/bench/ophnet_bench.py [--videos 1000] [--predictions 100]
[--epochs 15] [--skip-run]``. On a shared machine set ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "ophnet"
EXAMPLE = EXAMPLES / "synthetic.yaml"
TIOUS = (0.3, 0.4, 0.5, 0.6, 0.7)


def _data(videos: int, per_video: int, classes: int = 20, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    truth, preds = [], []
    for _ in range(videos):
        count = int(rng.integers(4, 16))
        starts = np.sort(rng.uniform(0, 900, count))
        ends = starts + rng.uniform(2, 60, count)
        labels = rng.integers(0, classes, count)
        truth.append(np.stack([starts, ends, labels], axis=1))
        pick = rng.integers(0, count, per_video)
        noisy_s = starts[pick] + rng.normal(0, 4, per_video)
        noisy_e = ends[pick] + rng.normal(0, 4, per_video)
        flip = rng.random(per_video) < 0.3
        pred_labels = np.where(flip, rng.integers(0, classes, per_video), labels[pick])
        scores = rng.random(per_video)
        preds.append(
            np.stack([noisy_s, np.maximum(noisy_e, noisy_s + 0.5), scores, pred_labels], 1)
        )
    return {"truth": truth, "preds": preds}


def _python_loop_map(truth: list[np.ndarray], preds: list[np.ndarray], tol: float = 1e-3) -> float:
    """Average mAP x100 by plain Python loops over floats, one prediction at a time."""
    gt = []
    for v, rows in enumerate(truth):
        kept: list[tuple[float, float, int]] = []
        for s, e, label in rows:
            if any(
                lab == label and abs(s - ks) <= tol and abs(e - ke) <= tol for ks, ke, lab in kept
            ):
                continue
            kept.append((s, e, int(label)))
        gt += [(v, s, e, lab) for s, e, lab in kept if s != e]
    classes = sorted({g[3] for g in gt})
    by_class_video: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for v, s, e, lab in gt:
        by_class_video.setdefault((lab, v), []).append((s, e))
    counts = {c: sum(1 for g in gt if g[3] == c) for c in classes}
    all_preds = [
        (v, s, e, score, int(lab)) for v, rows in enumerate(preds) for s, e, score, lab in rows
    ]
    ap_sum = np.zeros(len(TIOUS))
    for c in classes:
        mine = sorted((p for p in all_preds if p[4] == c), key=lambda p: -p[3])
        if not mine:
            continue
        locked = {
            key: [[False] * len(v) for _ in TIOUS]
            for key, v in by_class_video.items()
            if key[0] == c
        }
        tp = np.zeros((len(TIOUS), len(mine)))
        for i, (v, s, e, _, _) in enumerate(mine):
            segments = by_class_video.get((c, v), [])
            overlaps = []
            for gs, ge in segments:
                inter = max(0.0, min(e, ge) - max(s, gs))
                overlaps.append(inter / ((e - s) + (ge - gs) - inter))
            order = sorted(range(len(segments)), key=lambda j: -overlaps[j])
            for t, tiou in enumerate(TIOUS):
                for j in order:
                    if overlaps[j] < tiou:
                        break
                    if locked[c, v][t][j]:
                        continue
                    locked[c, v][t][j] = True
                    tp[t, i] = 1
                    break
        for t in range(len(TIOUS)):
            cum_tp = np.cumsum(tp[t])
            cum_fp = np.cumsum(1 - tp[t])
            precision = list(cum_tp / (cum_tp + cum_fp))
            recall = list(cum_tp / counts[c])
            mprec, mrec = [0.0, *precision, 0.0], [0.0, *recall, 1.0]
            for k in range(len(mprec) - 2, -1, -1):
                mprec[k] = max(mprec[k], mprec[k + 1])
            ap_sum[t] += sum(
                (mrec[k] - mrec[k - 1]) * mprec[k]
                for k in range(1, len(mrec))
                if mrec[k] != mrec[k - 1]
            )
    return float(np.mean(ap_sum / len(classes)) * 100)


def _clean(truth: list[np.ndarray], tol: float) -> np.ndarray:
    rows = []
    for v, video in enumerate(truth):
        kept: list[tuple[float, float, float]] = []
        for s, e, label in video:
            if any(k[2] == label and abs(s - k[0]) <= tol and abs(e - k[1]) <= tol for k in kept):
                continue
            kept.append((s, e, label))
        rows += [(v, s, e, label) for s, e, label in kept if s != e]
    return np.asarray(rows, dtype=np.float64)


def _numpy_loop_map(truth: list[np.ndarray], preds: list[np.ndarray], tol: float = 1e-3) -> float:
    """Average mAP x100 with the reference's structure: per class, per prediction, numpy tIoU
    against the video's ground truth, an argsort, then the threshold and ground-truth loops."""
    gt = _clean(truth, tol)
    tious = np.asarray(TIOUS)
    classes = np.unique(gt[:, 3])
    flat = np.concatenate([np.column_stack([np.full(len(p), v), p]) for v, p in enumerate(preds)])
    ap = np.zeros((len(tious), len(classes)))
    for ci, c in enumerate(classes):
        truth_c, pred_c = gt[gt[:, 3] == c], flat[flat[:, 4] == c]
        if len(pred_c) == 0:
            continue
        pred_c = pred_c[np.argsort(-pred_c[:, 3], kind="stable")]
        by_video = {v: np.flatnonzero(truth_c[:, 0] == v) for v in np.unique(truth_c[:, 0])}
        locked = np.zeros((len(tious), len(truth_c)), dtype=bool)
        tp = np.zeros((len(tious), len(pred_c)))
        for i, (v, s, e, _, _) in enumerate(pred_c):
            rows = by_video.get(v)
            if rows is None:
                continue
            seg = truth_c[rows, 1:3]
            inter = np.clip(np.minimum(e, seg[:, 1]) - np.maximum(s, seg[:, 0]), 0, None)
            overlap = inter / ((e - s) + (seg[:, 1] - seg[:, 0]) - inter)
            order = np.argsort(-overlap, kind="stable")
            for t, threshold in enumerate(tious):
                for j in order:
                    if overlap[j] < threshold:
                        break
                    if locked[t, rows[j]]:
                        continue
                    locked[t, rows[j]] = True
                    tp[t, i] = 1
                    break
        cum_tp, cum_fp = np.cumsum(tp, axis=1), np.cumsum(1 - tp, axis=1)
        precision, recall = cum_tp / (cum_tp + cum_fp), cum_tp / len(truth_c)
        for t in range(len(tious)):
            mprec = np.hstack([[0], precision[t], [0]])
            mrec = np.hstack([[0], recall[t], [1]])
            for k in range(len(mprec) - 2, -1, -1):
                mprec[k] = max(mprec[k], mprec[k + 1])
            idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
            ap[t, ci] = np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx])
    return float(ap.mean(axis=1).mean() * 100)


def _functional_map(truth: list[np.ndarray], preds: list[np.ndarray]) -> float:
    from asklepios_ophnet._tal import detection_ap

    pred = np.concatenate(preds)
    gt = np.concatenate(truth)
    ap, _ = detection_ap(
        np.repeat(np.arange(len(preds)), [len(p) for p in preds]),
        pred[:, :2],
        pred[:, 2],
        pred[:, 3].astype(np.int64),
        np.repeat(np.arange(len(truth)), [len(t) for t in truth]),
        gt[:, :2],
        gt[:, 2].astype(np.int64),
        np.asarray(TIOUS),
    )
    return float(ap.mean(axis=1).mean() * 100)


def _batches(truth: list[np.ndarray], preds: list[np.ndarray]) -> list[tuple[dict, dict]]:
    """Return (outputs, batch) pairs of 8 videos, padded as an evaluation loader gives them."""
    from asklepios_sdk.sequences import pad_sequences

    pairs = []
    for start in range(0, len(truth), 8):
        gt_pad, gt_mask = pad_sequences([torch.from_numpy(t) for t in truth[start : start + 8]])
        pr_pad, pr_mask = pad_sequences([torch.from_numpy(p) for p in preds[start : start + 8]])
        batch = {
            "segments": gt_pad[..., :2],
            "segment_labels": gt_pad[..., 2].long(),
            "segment_mask": gt_mask,
            "index": torch.arange(start, start + len(gt_pad)),
        }
        outputs = {
            "segments": pr_pad[..., :2],
            "scores": pr_pad[..., 2],
            "labels": pr_pad[..., 3].long(),
            "segment_mask": pr_mask,
        }
        pairs.append((outputs, batch))
    return pairs


def _evaluator_map(batches: list[tuple[dict, dict]]) -> float:
    """Average mAP x100 by ``ophnet.tal_map``: update on every batch, then compute."""
    from asklepios_ophnet.metrics import TALMapEvaluator
    from asklepios_ophnet.params import TALMapEvaluatorParams
    from asklepios_sdk import BuildContext

    evaluator = TALMapEvaluator(TALMapEvaluatorParams(units="steps"), BuildContext())
    for outputs, batch in batches:
        evaluator.update(outputs, batch)
    return float(evaluator.compute()["average"])


def _timed(function: Any, *args: Any, repeats: int = 1) -> tuple[float, float]:
    """Return (value, best time in s) over ``repeats`` calls."""
    best, value = float("inf"), 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        value = function(*args)
        best = min(best, time.perf_counter() - start)
    return value, best


def bench_map(videos: int, per_video: int) -> dict[str, Any]:
    data = _data(videos, per_video)
    truth, preds = data["truth"], data["preds"]
    batches = _batches(truth, preds)
    _evaluator_map(batches[:1])  # imports and first-call costs
    results = {  # best of several calls each, so that a busy moment does not pick the ratio
        "evaluator": _timed(_evaluator_map, batches, repeats=7),
        "compute": _timed(_functional_map, truth, preds, repeats=7),
        "numpy_loop": _timed(_numpy_loop_map, truth, preds, repeats=3),
        "python_loop": _timed(_python_loop_map, truth, preds, repeats=3),
    }
    values = [v for v, _ in results.values()]
    assert max(values) - min(values) < 1e-9, values
    return {"map": values[0], **{k: t for k, (_, t) in results.items()}}


def _step_time(stages: int, length: int, channels: int, classes: int, repeats: int) -> float:
    from asklepios_ophnet.mstcn import MSTCN, MSTCNLoss
    from asklepios_ophnet.params import MSTCNLossParams, MSTCNParams
    from asklepios_sdk import BuildContext, DataFacts

    ctx = BuildContext(data=DataFacts(num_classes=classes, num_features=channels))
    model = MSTCN(MSTCNParams(num_stages=stages), ctx)
    loss = MSTCNLoss(MSTCNLossParams(), ctx)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    batch = {
        "features": torch.randn(1, length, channels),
        "mask": torch.ones(1, length, dtype=torch.bool),
        "frame_labels": torch.randint(0, classes, (1, length)),
    }
    return _median_step(model, loss, optimizer, batch, repeats)


def _median_step(model: Any, loss: Any, optimizer: Any, batch: dict, repeats: int) -> float:
    """Return the median seconds of ``repeats`` training steps after one warm-up step."""
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        result = loss(model(batch), batch)
        optimizer.zero_grad()
        result.total.backward()
        optimizer.step()
        if i:  # the first step warms up allocators
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def _actionformer_step_time(length: int, channels: int, classes: int, repeats: int) -> float:
    from asklepios_ophnet.actionformer import ActionFormer
    from asklepios_ophnet.actionformer_loss import ActionFormerLoss
    from asklepios_ophnet.params import ActionFormerLossParams, ActionFormerParams
    from asklepios_sdk import BuildContext, DataFacts

    ctx = BuildContext(data=DataFacts(num_classes=classes, num_features=channels))
    model = ActionFormer(ActionFormerParams(), ctx)
    loss = ActionFormerLoss(ActionFormerLossParams(), ctx)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    starts = torch.sort(torch.rand(20) * (length - 200)).values
    batch = {
        "features": torch.randn(1, length, channels),
        "mask": torch.ones(1, length, dtype=torch.bool),
        "segments": torch.stack([starts, starts + 4 + torch.rand(20) * 190], dim=1)[None],
        "segment_labels": torch.randint(0, classes, (1, 20)),
        "segment_mask": torch.ones(1, 20, dtype=torch.bool),
    }
    return _median_step(model, loss, optimizer, batch, repeats)


def bench_step(length: int = 2304, channels: int = 1408, repeats: int = 5) -> dict[str, float]:
    four = _step_time(4, length, channels, 53, repeats)
    one = _step_time(1, length, channels, 53, repeats)
    former = _actionformer_step_time(length, channels, 107, repeats)
    return {
        "mstcn_ms": four * 1000,
        "one_stage_ms": one * 1000,
        "ratio": four / one,
        "actionformer_ms": former * 1000,
        "actionformer_ratio": former / four,
    }


def bench_synthetic(epochs: int | None, config: Path = EXAMPLE) -> dict[str, float]:
    """Run a synthetic example through the command line; return its test figures."""
    cli = shutil.which("asklepios") or str(Path(sys.executable).with_name("asklepios"))
    with tempfile.TemporaryDirectory() as tmp:
        sets = ["train.device=cpu", f"output_dir={tmp}"]
        sets += [f"train.epochs={epochs}"] if epochs is not None else []
        command = [cli, "run", str(config), *(a for v in sets for a in ("--set", v))]
        subprocess.run(command, check=True, capture_output=True, text=True)
        (run_dir,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        test = json.loads((run_dir / "summary.json").read_text())["test"]
    return {
        "average": test["tal_map/average"],
        "rank_score": test.get("phase_recognition/rank_score", float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--predictions", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--skip-run", action="store_true", help="leave out the synthetic run")
    args = parser.parse_args()
    torch.manual_seed(0)
    result = bench_map(args.videos, args.predictions)
    size = f"{args.videos} videos x {args.predictions} predictions"
    print("| measure | value |\n|---|---|")
    print(f"| tal_map update + compute, {size} | {result['evaluator']:.3f} s |")
    print(f"| its compute (vectorised matching and AP) | {result['compute']:.3f} s |")
    print(
        f"| per-prediction loop, reference structure (numpy tIoU) | {result['numpy_loop']:.2f} s |"
    )
    print(f"| per-prediction loop, plain Python floats | {result['python_loop']:.2f} s |")
    for name in ("numpy_loop", "python_loop"):
        print(
            f"| speed-up vs {name.replace('_', ' ')} (target >= 20x): evaluator / compute | "
            f"{result[name] / result['evaluator']:.1f}x / {result[name] / result['compute']:.1f}x |"
        )
    print(f"| average mAP (identical in all four, to 1e-9) | {result['map']:.4f} |")
    step = bench_step()
    print(f"| MS-TCN 4x10x64 step per video, T = 2304, C = 1408 | {step['mstcn_ms']:.0f} ms |")
    print(f"| one-stage 1x10x64 step, same input | {step['one_stage_ms']:.0f} ms |")
    print(f"| ratio 4 stages / 1 stage | {step['ratio']:.2f} |")
    print(
        f"| ActionFormer step per video (width 512, window 19, 107 classes), same input | "
        f"{step['actionformer_ms']:.0f} ms |"
    )
    print(f"| ratio ActionFormer / MS-TCN 4x10x64 | {step['actionformer_ratio']:.2f} |")
    if not args.skip_run:
        synthetic = bench_synthetic(args.epochs)
        print(
            f"| synthetic config, {args.epochs} epochs: test average mAP | "
            f"{synthetic['average']:.2f} (rank score {synthetic['rank_score']:.4f}) |"
        )
        former = bench_synthetic(None, EXAMPLES / "synthetic_actionformer.yaml")
        print(
            f"| synthetic_actionformer config, 20 epochs: test average mAP | "
            f"{former['average']:.2f} |"
        )


if __name__ == "__main__":
    main()
