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

__all__ = ["clean_ground_truth", "detection_ap", "interpolated_ap", "segment_tiou"]


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


def clean_ground_truth(
    video: np.ndarray, start: np.ndarray, end: np.ndarray, label: np.ndarray, tol: float
) -> np.ndarray:
    """Return the mask of ground truth kept: no repeat of a kept segment, no zero length."""
    keep = np.ones(len(video), dtype=bool)
    order = np.argsort(video, kind="stable")
    bounds = np.flatnonzero(np.r_[True, video[order][1:] != video[order][:-1], True])
    for a, b in itertools.pairwise(bounds):
        rows = order[a:b]
        if len(rows) < 2:
            continue
        same = (
            (label[rows][:, None] == label[rows][None, :])
            & (np.abs(start[rows][:, None] - start[rows][None, :]) <= tol)
            & (np.abs(end[rows][:, None] - end[rows][None, :]) <= tol)
        )
        same = np.triu(same, k=1)  # same[i, j]: j repeats the earlier i
        if not same.any():
            continue
        kept: list[int] = []
        for j in range(len(rows)):
            if any(same[i, j] for i in kept):
                keep[rows[j]] = False
            else:
                kept.append(j)
    return keep & (start != end)


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Return VOC-2011 all-point interpolated AP of each row of ``[R, n]`` curves."""
    rows = precision.shape[0]
    mprec = np.concatenate([np.zeros((rows, 1)), precision, np.zeros((rows, 1))], axis=1)
    mrec = np.concatenate([np.zeros((rows, 1)), recall, np.ones((rows, 1))], axis=1)
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
    return np.sum(np.diff(mrec, axis=1) * mprec[:, 1:], axis=1)


def _class_space(
    gt_label: np.ndarray, pred_label: np.ndarray, faithful: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    classes = np.unique(gt_label)
    gt_class = np.searchsorted(classes, gt_label)
    position = np.searchsorted(classes, pred_label).clip(max=max(len(classes) - 1, 0))
    known = (classes[position] == pred_label) if len(classes) else np.zeros(len(pred_label), bool)
    pred_class = np.where(known, position, pred_label if faithful else -1)
    return classes, gt_class, np.where(pred_class < len(classes), pred_class, -1)


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
    slot = np.searchsorted(keys, pred_key).clip(max=max(len(keys) - 1, 0))
    has_gt = (keys[slot] == pred_key) if len(keys) else np.zeros(count, dtype=bool)
    if not has_gt.any():
        return tp
    width = int(sizes.max())
    preds = np.flatnonzero(has_gt)
    group = slot[preds]
    columns = np.arange(width)
    valid = columns[None, :] < sizes[group][:, None]
    gt_rows = gt_order[np.minimum(first[group][:, None] + columns[None, :], len(gt_order) - 1)]
    seg = pred_segments[preds]
    left = np.maximum(seg[:, 0:1], gt_segments[gt_rows, 0])
    right = np.minimum(seg[:, 1:2], gt_segments[gt_rows, 1])
    inter = np.clip(right - left, 0, None)
    union = (seg[:, 1:2] - seg[:, 0:1]) + (gt_segments[gt_rows, 1] - gt_segments[gt_rows, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = inter / (union - inter)
    overlap = np.where(valid & np.isfinite(overlap), overlap, -1.0)
    # rank of each prediction within its (class, video) group, in score order
    by_group = np.lexsort((np.arange(len(preds)), group))
    starts = np.flatnonzero(np.r_[True, group[by_group][1:] != group[by_group][:-1]])
    rank = np.empty(len(preds), dtype=np.int64)
    rank[by_group] = np.arange(len(preds)) - np.repeat(starts, np.diff(np.r_[starts, len(preds)]))
    locked = np.zeros((len(keys), steps, width), dtype=bool)
    step_index = np.arange(steps)[None, :]
    rank_order = np.argsort(rank, kind="stable")
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
    for c in range(len(classes)):
        mine = p_class == c
        if not mine.any():
            continue
        hits = tp[:, mine].astype(np.float64)
        cum_tp = np.cumsum(hits, axis=1)
        cum_fp = np.cumsum(1.0 - hits, axis=1)
        ap[:, c] = interpolated_ap(cum_tp / (cum_tp + cum_fp), cum_tp / positives[c])
    return ap, classes
