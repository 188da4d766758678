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

How it is computed without a loop over predictions:

- Only true positives move AP: recall rises at each, and the interpolated precision there is the
  largest ``i / rank`` of the class's true positives from it on (a false positive's precision is
  below that of the true positive before it). So no ``[T, P]`` hit array is built: matching lists
  the true positives as (threshold, prediction) pairs, and AP needs each one's rank in its class.
- Matching runs per (class, video) group. In a group with one ground truth, the first prediction
  over a threshold takes it, so a prediction hits at the thresholds its tIoU reaches and no
  earlier prediction of the group reached: one segmented running maximum of integer "levels".
- Groups with several ground truth depend on which one each prediction locks; they advance
  together, one numpy pass per rank within a group, over the predictions that reach the lowest
  threshold.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["clean_ground_truth", "detection_ap", "segment_tiou"]


def _tiou(
    start: np.ndarray, end: np.ndarray, gt_start: np.ndarray, gt_end: np.ndarray
) -> np.ndarray:
    """Return the tIoU of broadcastable segment ends, in the reference's order of operations."""
    inter = np.minimum(end, gt_end) - np.maximum(start, gt_start)
    np.clip(inter, 0, None, out=inter)
    union = (end - start) + (gt_end - gt_start) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def segment_tiou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Return the temporal IoU of broadcastable ``[..., 2]`` segments (nan for a zero union).

    ``segment_tiou(p[:, None], g[None])`` gives the ``[P, G]`` table of every pair.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    return _tiou(pred[..., 0], pred[..., 1], gt[..., 0], gt[..., 1])


def _stable_order(values: np.ndarray) -> np.ndarray:
    """Return the stable ascending order of non-negative integers (radix sort when they fit)."""
    if len(values) and int(values.max()) < 2**16:
        return np.argsort(values.astype(np.uint16), kind="stable")
    return np.argsort(values, kind="stable")


def _repeat_candidates(
    video: np.ndarray, start: np.ndarray, end: np.ndarray, label: np.ndarray, tol: float
) -> np.ndarray:
    """Return the videos holding two segments of one label with both ends within ``tol``."""
    shifted = label - label.min(initial=0)
    key = (video - video.min(initial=0)) * (int(shifted.max(initial=0)) + 1) + shifted
    by_start = np.argsort(start)  # equal starts in any order: each pair is checked below
    order = by_start[_stable_order(key[by_start])]
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


def _descending(score: np.ndarray) -> np.ndarray:
    """Return the order of descending score; equal scores (and NaN) keep their input order."""
    order = np.argsort(-score)  # the unstable sort is several times faster; exact without ties
    ranked = score[order]
    if np.isnan(ranked).any() or (ranked[1:] == ranked[:-1]).any():
        return np.argsort(-score, kind="stable")
    return order


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
    small = len(gt_label) == 0 or 0 <= gt_label.min() <= gt_label.max() < 1_000_000
    classes = np.flatnonzero(np.bincount(gt_label)) if small else np.unique(gt_label)
    gt_class = np.searchsorted(classes, gt_label)
    position = _lookup(classes, pred_label)
    pred_class = np.where(position >= 0, position, pred_label if faithful else -1)
    return classes, gt_class, np.where(pred_class < len(classes), pred_class, -1)


def _ramps(begin: np.ndarray | int, sizes: np.ndarray) -> np.ndarray:
    """Return the runs ``begin[i], begin[i] + 1, ..., begin[i] + sizes[i] - 1`` end to end."""
    return np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes - begin, sizes)


def _overlap(
    start: np.ndarray, end: np.ndarray, gt_start: np.ndarray, gt_end: np.ndarray
) -> np.ndarray:
    """Return the tIoU of broadcastable segment ends, -1 where it is undefined."""
    overlap = _tiou(start, end, gt_start, gt_end)
    overlap[~np.isfinite(overlap)] = -1.0  # padding (nan) and degenerate segments
    return overlap


def _levels(overlap: np.ndarray, tious: np.ndarray) -> np.ndarray:
    """Return how many of the thresholds each tIoU reaches (``>=``)."""
    level = np.zeros(overlap.shape, dtype=np.int64)
    for tiou in tious:
        level += overlap >= tiou
    return level


def _single_hits(
    position: np.ndarray, target: np.ndarray, level: np.ndarray, steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(threshold, position)`` of the hits of predictions with one candidate each.

    Each prediction can take only its ``target`` ground truth, at the ``level`` lowest
    thresholds its tIoU reaches; it hits those of them that no earlier prediction of the same
    target reached.
    """
    by_target = _stable_order(target)  # keeps score order within a target
    position, target, level = position[by_target], target[by_target], level[by_target]
    lift = target * (steps + 1)  # earlier targets' levels stay below this target's
    best = np.maximum.accumulate(lift + level)
    earlier = np.clip(np.r_[0, best[:-1]] - lift, 0, None)  # < 0: first of its target
    hits = np.clip(level - earlier, 0, None)
    return _ramps(earlier, hits), np.repeat(position, hits)


def _padded_overlap(
    start: np.ndarray,
    end: np.ndarray,
    group: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    first: np.ndarray,
    sizes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(groups, local, overlap [N, W])``: each prediction against its group's truth.

    ``groups`` are the distinct groups, ``local`` each prediction's index into them; columns
    past a group's size are padding, with tIoU -1.
    """
    groups, local = np.unique(group, return_inverse=True)
    counts = sizes[groups]
    row, column = np.repeat(np.arange(len(groups)), counts), _ramps(0, counts)
    source = np.repeat(first[groups], counts) + column
    padded = np.full((2, len(groups), int(counts.max())), np.nan)  # padding overlaps nothing
    padded[0, row, column], padded[1, row, column] = gt_start[source], gt_end[source]
    return groups, local, _overlap(start[:, None], end[:, None], padded[0, local], padded[1, local])


def _contested_hits(
    position: np.ndarray, group: np.ndarray, overlap: np.ndarray, tious: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(threshold, position)`` of the hits in groups where a prediction has several
    candidates: which one it locks matters, so groups advance together, one rank at a time."""
    by_group = _stable_order(group)
    starts = np.flatnonzero(np.r_[True, group[by_group][1:] != group[by_group][:-1]])
    rank = np.empty(len(position), dtype=np.int64)
    rank[by_group] = _ramps(0, np.diff(np.r_[starts, len(position)]))
    locked = np.zeros((groups, len(tious), overlap.shape[1]), dtype=bool)
    step_index = np.arange(len(tious))[None, :]
    rank_order = _stable_order(rank)
    bounds = np.flatnonzero(np.r_[True, np.diff(rank[rank_order]) != 0, True])
    steps, hits = [], []
    for a, b in itertools.pairwise(bounds):
        active = rank_order[a:b]  # one prediction per group
        g = group[active]
        candidates = np.where(locked[g], -1.0, overlap[active][:, None, :])  # [A, T, W]
        best = candidates.argmax(axis=2)
        value = np.take_along_axis(candidates, best[..., None], axis=2)[..., 0]
        hit = value >= tious[None, :]
        locked[g[:, None], step_index, best] |= hit
        row, step = np.nonzero(hit)
        steps.append(step)
        hits.append(position[active][row])
    return np.concatenate(steps), np.concatenate(hits)


def _match(
    pred_key: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    gt_key: np.ndarray,
    gt_start: np.ndarray,
    gt_end: np.ndarray,
    tious: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(threshold, prediction)`` of every true positive.

    Predictions come in score order, ``tious`` ascending; keys name (class, video) groups. A
    prediction's candidates are the ground truth of its group it overlaps by the lowest
    threshold. Where no prediction of a group has several, each ground truth is matched on its
    own (:func:`_single_hits`); the other groups need the sequential rule.
    """
    gt_order = np.argsort(gt_key, kind="stable")
    keys, first, sizes = np.unique(gt_key[gt_order], return_index=True, return_counts=True)
    gt_start, gt_end = gt_start[gt_order], gt_end[gt_order]
    slot = _lookup(keys, pred_key)
    position = np.flatnonzero(slot >= 0)
    # every (prediction, ground truth of its group) pair, in score order of the predictions
    count = sizes[slot[position]]
    pred = np.repeat(position, count)
    truth = _ramps(first[slot[position]], count)
    overlap = _overlap(start[pred], end[pred], gt_start[truth], gt_end[truth])
    candidate = np.flatnonzero(overlap >= tious[0])
    pred, truth, overlap = pred[candidate], truth[candidate], overlap[candidate]
    owner = np.repeat(np.arange(len(keys)), sizes)  # the group of each ground truth
    contested = np.zeros(len(keys), dtype=bool)
    contested[owner[truth[1:][pred[1:] == pred[:-1]]]] = True  # a prediction's second candidate
    clear = ~contested[owner[truth]]
    steps, hits = _single_hits(
        pred[clear], truth[clear], _levels(overlap[clear], tious), len(tious)
    )
    if clear.all():
        return steps, hits
    position = pred[~clear]  # ascending, so in score order
    position = position[np.r_[True, position[1:] != position[:-1]]]
    groups, local, table = _padded_overlap(
        start[position], end[position], slot[position], gt_start, gt_end, first, sizes
    )
    more = _contested_hits(position, local, table, tious, len(groups))
    return np.r_[steps, more[0]], np.r_[hits, more[1]]


def _class_rank(label: np.ndarray, classes: int) -> np.ndarray:
    """Return each prediction's 1-based position among its class's, for labels in score order."""
    counts = np.bincount(label, minlength=classes)
    rank = np.empty(len(label), dtype=np.int64)
    rank[_stable_order(label)] = _ramps(0, counts) + 1
    return rank


def _class_ap(
    step: np.ndarray, label: np.ndarray, rank: np.ndarray, positives: np.ndarray, steps: int
) -> np.ndarray:
    """Return ``[T, C]`` interpolated AP from the true positives alone.

    Each true positive gives its threshold ``step``, class ``label`` and 1-based ``rank`` among
    its class's predictions by score. The ``i``-th of a (threshold, class) curve has precision
    ``i / rank`` and raises recall by ``1 / #GT``; the precision it is weighted with is the
    running maximum from the right, which restarts at each curve because each curve's values are
    lifted above those of every curve after it.
    """
    classes = len(positives)
    ap = np.zeros((steps, classes))
    if len(step) == 0:
        return ap
    curve = step * classes + label
    order = np.argsort(curve * (int(rank.max()) + 1) + rank)  # keys are unique
    curve, rank = curve[order], rank[order]
    starts = np.flatnonzero(np.r_[True, curve[1:] != curve[:-1]])
    count = _ramps(1, np.diff(np.r_[starts, len(curve)])).astype(np.float64)
    total = positives[curve % classes]
    gain = count / total - (count - 1) / total  # the reference's recall differences
    lift = 2.0 * (curve[-1] + 1 - curve)  # precision <= 1 < the gap between two curves
    best = np.maximum.accumulate((count / rank + lift)[::-1])[::-1] - lift
    ap.reshape(-1)[curve[starts]] = np.add.reduceat(gain * best, starts)
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
    ascending = np.argsort(tious, kind="stable")
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
    order = scored[_descending(np.asarray(pred_score, np.float64)[scored])]
    p_class, p_video = pred_class[order], np.asarray(pred_video, np.int64)[order]
    span = int(max(gt_video.max(initial=0), p_video.max(initial=0))) + 1
    step, hit = _match(
        p_class * span + p_video,
        pred_segments[order, 0],
        pred_segments[order, 1],
        gt_class * span + gt_video,
        gt_segments[:, 0],
        gt_segments[:, 1],
        tious[ascending],
    )
    positives = np.bincount(gt_class, minlength=len(classes))
    rank = _class_rank(p_class, len(classes))[hit]
    ap[ascending] = _class_ap(step, p_class[hit], rank, positives, len(tious))
    return ap, classes
