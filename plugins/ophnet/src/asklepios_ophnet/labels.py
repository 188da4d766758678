"""The OphNet2024 challenge label space and the CSV -> ActivityNet JSON converter.

Rules (verified by the specification against the released files):

- **"Others" remap.** Every label with fewer than ``min_count`` (15) rows over the whole
  ``loca_all`` table (all splits) becomes ``other`` (51 for phases, 106 for operations).
- **Consecutive merge.** Walking the rows in order, consecutive rows of one video with the same
  phase merge, whatever the gap between them; the merged row keeps the first row's ``start``,
  ``split`` and ``surgery_id`` and takes the last row's ``end``. A later return to the phase after
  another one starts a new row.
- **ActivityNet JSON.** ``{"version", "database": {video: {duration, fps, subset, annotations:
  [{label: str(id), label_id: id, segment: [start, end]}]}}}``, one annotation per CSV row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from asklepios_ophnet.annotations import AnnotationError, VideoInfo, VideoRecord

__all__ = [
    "challenge_records",
    "challenge_remap",
    "consecutive_runs",
    "merge_consecutive_phases",
    "remap_rare_labels",
    "to_activitynet",
]


def remap_rare_labels(labels: np.ndarray, min_count: int, other: int) -> np.ndarray:
    """Send every label with fewer than ``min_count`` occurrences in ``labels`` to ``other``."""
    labels = np.asarray(labels, dtype=np.int64)
    values, counts = np.unique(labels, return_counts=True)
    rare = values[counts < min_count]
    return np.where(np.isin(labels, rare), other, labels)


def consecutive_runs(videos: Sequence[Any] | np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return a run id per row: a new run starts when the video or the label changes."""
    videos = np.asarray(videos)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.ones(len(labels), dtype=bool)
    change[1:] = (videos[1:] != videos[:-1]) | (labels[1:] != labels[:-1])
    return np.cumsum(change) - 1


def challenge_remap(
    table: pd.DataFrame, min_count: int = 15, other_phase: int = 51, other_operation: int = 106
) -> pd.DataFrame:
    """Return ``table`` with rare phase and operation ids replaced by the "Others" ids.

    Counts are taken over the rows of ``table`` itself: pass the whole ``loca_all`` table (all
    splits), as the released challenge files were made.
    """
    out = table.copy()
    out["phase_id"] = remap_rare_labels(out["phase_id"].to_numpy(), min_count, other_phase)
    if "operation_id" in out.columns:
        out["operation_id"] = remap_rare_labels(
            out["operation_id"].to_numpy(), min_count, other_operation
        )
    return out


def merge_consecutive_phases(table: pd.DataFrame) -> pd.DataFrame:
    """Merge consecutive rows of one video with the same ``phase_id`` (gaps do not matter).

    Returns the columns ``video_id,start,end,split,surgery_id,phase_id`` of
    ``OphNet2024_loca_challenge_phase.csv``.
    """
    runs = consecutive_runs(table["video_id"].to_numpy(), table["phase_id"].to_numpy())
    grouped = table.groupby(runs, sort=True)
    merged = grouped.first()[["video_id", "start", "split", "surgery_id", "phase_id"]]
    merged.insert(2, "end", grouped["end"].last())
    return merged.reset_index(drop=True)


def challenge_records(
    records: Sequence[VideoRecord], min_count: int, other: int, merge: bool
) -> list[VideoRecord]:
    """Apply the challenge rule to per-video records: remap over all of them, then merge."""
    if not records:
        return []
    labels = np.concatenate([r.labels for r in records])
    remapped = remap_rare_labels(labels, min_count, other)
    out, offset = [], 0
    for record in records:
        mine = remapped[offset : offset + len(record.labels)]
        offset += len(record.labels)
        segments, surgery_ids = record.segments, record.surgery_ids
        if merge and len(mine):
            runs = consecutive_runs(np.zeros(len(mine)), mine)
            first = np.flatnonzero(np.r_[True, runs[1:] != runs[:-1]])
            last = np.r_[first[1:] - 1, len(mine) - 1]
            segments = np.stack([segments[first, 0], segments[last, 1]], axis=1)
            mine, surgery_ids = mine[first], surgery_ids[first]
        out.append(record.replace_annotations(segments, mine, surgery_ids))
    return out


def to_activitynet(
    table: pd.DataFrame,
    level: str,
    info: Mapping[str, VideoInfo] | None = None,
    default_fps: float | None = None,
    version: str = "OphNet2024",
) -> dict[str, Any]:
    """Convert a localisation table to an ActivityNet-style dict, one annotation per row.

    Args:
        table: a typed localisation table (:func:`~asklepios_ophnet.annotations.read_loca_csv`).
        level: ``"phase"`` or ``"operation"``: which id becomes the label.
        info: fps and duration per video (from a video-info CSV or a released JSON).
        default_fps: for videos without ``info``: this fps, and the last segment end as duration.
        version: the ``version`` field.

    Raises:
        AnnotationError: a video has no fps and duration and no ``default_fps`` is given.
    """
    column = f"{level}_id"
    if column not in table.columns:
        raise AnnotationError(f"the table has no {column!r} column; use level 'phase'")
    info = info or {}
    unknown = sorted(set(table["video_id"]) - set(info))
    if unknown and default_fps is None:
        raise AnnotationError(
            f"{len(unknown)} video(s) have no fps/duration (first {unknown[:3]}); give a video "
            "info CSV (video_id,fps,duration) or the released JSON with --video-info, or "
            "--default-fps"
        )
    database: dict[str, Any] = {}
    for video_id, rows in table.groupby("video_id", sort=False):
        known = info.get(str(video_id))
        fps = known.fps if known is not None else float(default_fps or 0.0)
        duration = known.duration if known is not None else float(rows["end"].max())
        database[str(video_id)] = {
            "duration": duration,
            "fps": fps,
            "subset": str(rows["split"].iloc[0]),
            "annotations": [
                {"label": str(int(label)), "label_id": int(label), "segment": [float(s), float(e)]}
                for s, e, label in zip(rows["start"], rows["end"], rows[column], strict=True)
            ],
        }
    return {"version": version, "database": database}
