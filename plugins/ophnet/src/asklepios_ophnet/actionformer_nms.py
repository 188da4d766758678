"""ActionFormer's post-processing: 1-D Soft-NMS, plain NMS and segment voting.

All work on segments ``[N, 2]`` (start, end) with ``scores [N]``, in ``groups`` (the class with
class-wise NMS, else one group) that never suppress each other.

- **Soft-NMS** (Bodla et al. 2017, gaussian; ActionFormer's ``softnms_1d_cpu`` with
  ``method=2``): repeatedly take the highest current score of a group, then multiply the score of
  every other remaining segment of the group by ``exp(-tIoU^2 / sigma)`` and drop those now
  below ``min_score``; at most ``max_num`` per group. The scores a group hands out never
  increase, so stopping after ``max_num`` picks is the reference's "keep the first max_num".
  Segment lengths get ``1e-6`` added in the tIoU, as the reference does. All groups advance
  together: one tensor pass per pick rank.
- **NMS**: ``torchvision.ops.batched_nms`` on the segments as unit-height boxes (their box IoU
  is the 1-D tIoU); scores must exceed ``min_score`` first; at most ``max_num`` per group.
- **Voting** (after class-agnostic NMS): each kept segment becomes the average of every
  candidate of tIoU >= ``thresh`` with it, weighted by score x tIoU.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

__all__ = ["hard_nms", "segment_iou", "segment_voting", "soft_nms"]


def segment_iou(a: Tensor, b: Tensor, eps: float = 0.0) -> Tensor:
    """Return the tIoU of ``a [..., 2]`` and ``b [..., 2]`` (broadcast), lengths + ``eps``."""
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(0)
    union = (a[..., 1] - a[..., 0] + eps) + (b[..., 1] - b[..., 0] + eps) - inter
    return inter / union


def soft_nms(
    segments: Tensor,
    scores: Tensor,
    groups: Tensor,
    sigma: float,
    min_score: float,
    max_num: int,
) -> tuple[Tensor, Tensor]:
    """Run gaussian Soft-NMS within each group.

    Args:
        segments: ``[N, 2]``; scores: ``[N]``; groups: ``[N]`` int64 group of each segment.
        sigma: the decay is ``exp(-tIoU^2 / sigma)``.
        min_score: segments whose decayed score falls below it are dropped.
        max_num: picks per group.

    Returns:
        ``(kept [M], kept_scores [M])``: indices into the input and the scores at pick time,
        by group, each group's picks in pick order.
    """
    if len(scores) == 0:
        return groups.new_zeros(0), scores.new_zeros(0)
    ids, group_of = torch.unique(groups, return_inverse=True)
    order = torch.sort(group_of, stable=True).indices
    counts = torch.bincount(group_of, minlength=len(ids))
    slot = torch.arange(len(order), device=scores.device) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    width = int(counts.max())
    rows = group_of[order]
    table = torch.full((len(ids), width), -1, dtype=torch.long, device=scores.device)
    table[rows, slot] = order
    present = table >= 0
    safe = table.clamp_min(0)
    current = torch.where(present, scores[safe], scores.new_zeros(()))
    segs = segments[safe]  # [G, W, 2]
    alive = present.clone()
    picked, picked_scores = [], []
    lowest = torch.finfo(current.dtype).min
    for _ in range(min(max_num, width)):
        any_alive = alive.any(dim=1)
        if not bool(any_alive.any()):
            break
        best = torch.where(alive, current, current.new_full((), lowest)).argmax(dim=1)
        rows_alive = torch.nonzero(any_alive).flatten()
        best = best[rows_alive]
        picked.append(table[rows_alive, best])
        picked_scores.append(current[rows_alive, best])
        alive[rows_alive, best] = False
        iou = segment_iou(segs[rows_alive, best][:, None], segs[rows_alive], eps=1e-6)
        decay = torch.exp(-(iou**2) / sigma)
        current[rows_alive] = torch.where(alive[rows_alive], current[rows_alive] * decay, 0.0)
        alive[rows_alive] &= current[rows_alive] >= min_score
    if not picked:
        return groups.new_zeros(0), scores.new_zeros(0)
    kept, kept_scores = torch.cat(picked), torch.cat(picked_scores)
    by_group = torch.sort(groups[kept], stable=True).indices
    return kept[by_group], kept_scores[by_group]


def hard_nms(
    segments: Tensor,
    scores: Tensor,
    groups: Tensor,
    iou_threshold: float,
    min_score: float,
    max_num: int,
) -> Tensor:
    """Return the indices plain NMS keeps within each group (at most ``max_num`` per group)."""
    candidates = torch.nonzero(scores > min_score).flatten()
    if len(candidates) == 0:
        return candidates
    seg = segments[candidates].float()
    boxes = torch.stack(
        [seg[:, 0], torch.zeros_like(seg[:, 0]), seg[:, 1], torch.ones_like(seg[:, 0])], dim=1
    )
    keep = candidates[
        batched_nms(boxes, scores[candidates].float(), groups[candidates], iou_threshold)
    ]
    rank = torch.zeros_like(keep)
    for group in torch.unique(groups[keep]):  # keep is score-sorted: rank within each group
        members = groups[keep] == group
        rank[members] = torch.arange(int(members.sum()), device=keep.device)
    return keep[rank < max_num]


def segment_voting(kept: Tensor, candidates: Tensor, scores: Tensor, thresh: float) -> Tensor:
    """Return each kept segment as the score x tIoU weighted mean of its overlapping candidates.

    Args:
        kept: ``[M, 2]`` segments after NMS; candidates: ``[N, 2]`` every segment before NMS
            with ``scores [N]``; thresh: the tIoU a candidate needs to vote.
    """
    iou = segment_iou(kept[:, None], candidates[None])
    weights = (iou >= thresh).to(scores.dtype) * scores[None] * iou
    return (weights @ candidates) / weights.sum(dim=1, keepdim=True)
