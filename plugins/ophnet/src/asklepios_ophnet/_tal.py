"""ActivityNet detection mAP (OphNet's ``libs/utils/metrics.py`` semantics), vectorised in numpy.

Definition (plugin specification, section 3.1):

1. ``tIoU(p, g) = max(0, min(e_p, e_g) - max(s_p, s_g)) / ((e_p - s_p) + (e_g - s_g) - inter)``.
2. Ground truth: a segment that repeats an earlier kept one of its video and label (both ends
   within ``tol``) is dropped; so are zero-length segments.
3. Only labels present in the cleaned ground truth are scored, remapped to ``0..C-1`` in sorted
   order. Predictions of other labels are dropped, or with ``faithful`` left un-remapped as the
   reference's ``DataFrame.replace`` leaves them (so a raw label ``L < C`` is scored as class
   ``L``).
4. Per class, predictions are visited by descending score (ties: input order). Each takes, among
   the not yet matched ground truth of its class and video, the one of highest tIoU (ties: the
   first); at threshold ``tau`` it is a true positive and locks that ground truth when the tIoU is
   ``>= tau``, else a false positive. This is the reference loop's "visit by descending tIoU, skip
   locked ones, stop below the threshold".
5. ``precision = cumTP / (cumTP + cumFP)``, ``recall = cumTP / #GT``; AP is the VOC-2011
   all-point interpolation; a class without predictions has AP 0.

The greedy matching of step 4 only depends on the order of predictions within one
(class, video) group, so all groups advance together: one numpy pass per rank within a group.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["clean_ground_truth", "detection_ap", "segment_tiou"]


def segment_tiou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Return the ``[P, G]`` temporal IoU of ``[P, 2]`` and ``[G, 2]`` segments."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    left = np.maximum(pred[:, None, 0], gt[None, :, 0])
    right = np.minimum(pred[:, None, 1], gt[None, :, 1])
    inter = np.clip(right - left, 0, None)
    union = (pred[:, None, 1] - pred[:, None, 0]) + (gt[None, :, 1] - gt[None, :, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def _repeat_candidates(
    video: np.ndarray, start: np.ndarray, end: np.ndarray, label: np.ndarray, tol: float
) -> np.ndarray:
    """Return the videos holding two segments of one label with both ends within ``tol``."""
    order = np.lexsort((start, label, video))
    v, lab, s, e = video[order], label[order], start[order], end[order]
    found: list[np.ndarray] = []
    for offset in range(1, len(order)):
        same = (v[offset:] == v[:-offset]) & (lab[offset:] == lab[:-offset])
        close = same & (s[offset:] - s[:-offset] <= tol)
        if not close.any():  # sorted by start: farther rows are farther apart
            break
        found.append(v[offset:][close & (np.abs(e[offset:] - e[:-offset]) <= tol)])
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=video.dtype)


def clean_ground_truth(
    video: np.ndarray, start: np.ndarray, end: np.ndarray, label: np.ndarray, tol: float
) -> np.ndarray:
    """Return the mask of ground truth kept: no repeat of a kept segment, no zero length.

    A segment is dropped when it repeats (same video and label, both ends within ``tol``) a
    segment kept before it, in input order; videos without such a pair are kept whole.
    """
    keep = np.ones(len(video), dtype=bool)
    for vid in _repeat_candidates(video, start, end, label, tol):
        rows = np.flatnonzero(video == vid)
        kept: list[int] = []
        for row in rows:
            if any(
                label[k] == label[row]
                and abs(start[k] - start[row]) <= tol
                and abs(end[k] - end[row]) <= tol
                for k in kept
            ):
                keep[row] = False
            else:
                kept.append(int(row))
    return keep & (start != end)


def _stable_order(values: np.ndarray) -> np.ndarray:
    """Return the stable ascending order of non-negative integers (radix sort when they fit)."""
    if len(values) and int(values.max()) < 2**16:
        return np.argsort(values.astype(np.uint16), kind="stable")
    return np.argsort(values, kind="stable")


def _lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Return the position of each query in the sorted unique ``keys``, or -1 when absent.

    Non-negative keys up to a few million use a dense table (one gather); others a binary
    search.
    """
    if len(keys) == 0:
        return np.full(len(queries), -1, dtype=np.int64)
    top = int(max(keys.max(), queries.max(initial=0)))
    if keys.min() >= 0 and (len(queries) == 0 or queries.min() >= 0) and top < 4_000_000:
        table = np.full(top + 1, -1, dtype=np.int64)
        table[keys] = np.arange(len(keys))
        return table[queries]
    slot = np.searchsorted(keys, queries).clip(max=len(keys) - 1)
    return np.where(keys[slot] == queries, slot, -1)


def _class_space(
    gt_label: np.ndarray, pred_label: np.ndarray, faithful: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    classes = np.unique(gt_label)
    gt_class = np.searchsorted(classes, gt_label)
    position = _lookup(classes, pred_label)
    pred_class = np.where(position >= 0, position, pred_label if faithful else -1)
    return classes, gt_class, np.where(pred_class < len(classes), pred_class, -1)


def _first_hits(
    tp: np.ndarray, preds: np.ndarray, group: np.ndarray, overlap: np.ndarray, tious: np.ndarray
) -> None:
    """Mark, per group of one ground truth and threshold, the first prediction reaching it."""
    order = _stable_order(group)  # keeps score order within a group
    hits = overlap[order, None] >= tious[None, :]  # [S, T]
    counts = np.cumsum(hits, axis=0)
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    before = np.where(starts[:, None] > 0, counts[np.maximum(starts - 1, 0)], 0)
    within = counts - np.repeat(before, np.diff(np.r_[starts, len(order)]), axis=0)
    tp[:, preds[order]] = (hits & (within == 1)).T


def _match(
    pred_key: np.ndarray,
    pred_segments: np.ndarray,
    gt_key: np.ndarray,
    gt_segments: np.ndarray,
    tious: np.ndarray,
) -> np.ndarray:
    """Return ``[T, P]`` true-positive flags of predictions given in score order."""
    count, steps = len(pred_key), len(tious)
    tp = np.zeros((steps, count), dtype=bool)
    gt_order = np.argsort(gt_key, kind="stable")
    keys, first, sizes = np.unique(gt_key[gt_order], return_index=True, return_counts=True)
    slot = _lookup(keys, pred_key)
    preds = np.flatnonzero(slot >= 0)
    if len(preds) == 0:
        return tp
    width = int(sizes.max())
    group = slot[preds]
    # each group's ground truth, padded to ``width`` rows; a padding row overlaps nothing
    padded = np.full((len(keys), width, 2), np.nan)
    column = np.arange(len(gt_order)) - np.repeat(first, sizes)
    padded[np.repeat(np.arange(len(keys)), sizes), column] = gt_segments[gt_order]
    truth = padded[group]  # [P, W, 2]
    seg = pred_segments[preds]
    inter = np.minimum(seg[:, 1:2], truth[..., 1]) - np.maximum(seg[:, 0:1], truth[..., 0])
    np.clip(inter, 0, None, out=inter)
    union = (seg[:, 1:2] - seg[:, 0:1]) + (truth[..., 1] - truth[..., 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = inter / union
    overlap[~np.isfinite(overlap)] = -1.0  # padding rows (nan) and degenerate segments
    # a prediction below the lowest threshold with every ground truth is a false positive and
    # locks nothing, so it leaves the sequential pass
    reach = overlap.max(axis=1) >= tious.min()
    preds, group, overlap = preds[reach], group[reach], overlap[reach]
    single = sizes[group] == 1
    if single.any():  # one ground truth: the first prediction (by score) over tau takes it
        _first_hits(tp, preds[single], group[single], overlap[single, 0], tious)
        preds, group, overlap = preds[~single], group[~single], overlap[~single]
    if len(preds) == 0:
        return tp
    # rank of each prediction within its (class, video) group, in score order
    by_group = _stable_order(group)
    starts = np.flatnonzero(np.r_[True, group[by_group][1:] != group[by_group][:-1]])
    rank = np.empty(len(preds), dtype=np.int64)
    rank[by_group] = np.arange(len(preds)) - np.repeat(starts, np.diff(np.r_[starts, len(preds)]))
    locked = np.zeros((len(keys), steps, width), dtype=bool)
    step_index = np.arange(steps)[None, :]
    rank_order = _stable_order(rank)
    bounds = np.flatnonzero(np.r_[True, np.diff(rank[rank_order]) != 0, True])
    for a, b in itertools.pairwise(bounds):
        active = rank_order[a:b]  # one prediction per group
        g = group[active]
        candidates = np.where(locked[g], -1.0, overlap[active][:, None, :])  # [A, T, W]
        best = candidates.argmax(axis=2)
        value = np.take_along_axis(candidates, best[..., None], axis=2)[..., 0]
        hit = value >= tious[None, :]
        locked[g[:, None], step_index, best] |= hit
        tp[:, preds[active]] = hit.T
    return tp


def _class_ap(tp: np.ndarray, label: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """Return ``[T, C]`` interpolated AP from ``[T, P]`` hits sorted by class, then score.

    All classes at once: cumulative counts restart at each class, and the running maximum of
    precision from the right restarts too, because each class's values are lifted above those
    of every class after it.
    """
    steps, count = tp.shape
    ap = np.zeros((steps, len(positives)))
    if count == 0:
        return ap
    start = np.searchsorted(label, label)  # first position of each prediction's class
    rank = np.arange(count) - start + 1  # 1-based position within the class
    cum_tp = np.cumsum(tp, axis=1, dtype=np.float64)
    before = np.where(start > 0, cum_tp[:, np.maximum(start - 1, 0)], 0.0)
    cum_tp -= before
    precision = cum_tp / rank
    recall = cum_tp / positives[label]
    lift = 2.0 * (len(positives) - label)  # precision <= 1 < the gap between two classes
    best = np.maximum.accumulate((precision + lift)[:, ::-1], axis=1)[:, ::-1] - lift
    step = np.diff(recall, axis=1, prepend=0.0)
    step[:, rank == 1] = recall[:, rank == 1]  # recall restarts from 0 in each class
    present = np.unique(label)
    ap[:, present] = np.add.reduceat(step * best, np.searchsorted(label, present), axis=1)
    return ap


def detection_ap(
    pred_video: np.ndarray,
    pred_segments: np.ndarray,
    pred_score: np.ndarray,
    pred_label: np.ndarray,
    gt_video: np.ndarray,
    gt_segments: np.ndarray,
    gt_label: np.ndarray,
    tious: np.ndarray,
    tol: float = 1e-3,
    faithful: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ap [T, C], classes [C])``: AP per tIoU threshold and ground-truth class.

    Videos are integer ids; predictions with equal scores keep their input order.
    """
    tious = np.asarray(tious, dtype=np.float64)
    gt_segments = np.asarray(gt_segments, dtype=np.float64).reshape(-1, 2)
    pred_segments = np.asarray(pred_segments, dtype=np.float64).reshape(-1, 2)
    gt_video, gt_label = np.asarray(gt_video, np.int64), np.asarray(gt_label, np.int64)
    keep = clean_ground_truth(gt_video, gt_segments[:, 0], gt_segments[:, 1], gt_label, tol)
    gt_video, gt_segments, gt_label = gt_video[keep], gt_segments[keep], gt_label[keep]
    classes, gt_class, pred_class = _class_space(
        gt_label, np.asarray(pred_label, np.int64), faithful
    )
    ap = np.zeros((len(tious), len(classes)))
    if len(classes) == 0:
        return ap, classes
    scored = np.flatnonzero(pred_class >= 0)
    order = scored[np.argsort(-np.asarray(pred_score, np.float64)[scored], kind="stable")]
    p_class, p_video = pred_class[order], np.asarray(pred_video, np.int64)[order]
    span = int(max(gt_video.max(initial=0), p_video.max(initial=0))) + 1
    tp = _match(
        p_class * span + p_video,
        pred_segments[order],
        gt_class * span + gt_video,
        gt_segments,
        tious,
    )
    positives = np.bincount(gt_class, minlength=len(classes))
    by_class = _stable_order(p_class)  # keeps score order within a class
    ap[:, :] = _class_ap(tp[:, by_class], p_class[by_class], positives)
    return ap, classes
