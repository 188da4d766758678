"""Read the OphNet2024 annotation files: typed CSV tables, surgery lists, ActivityNet JSON.

The CSVs are comma-separated, three of them start with a UTF-8 byte-order mark (read with
``utf-8-sig``), times are seconds. ``loca_all`` / ``loca_challenge`` have the columns
``video_id,start,end,split,surgery_id,phase_id,operation_id``; ``loca_challenge_phase`` lacks
``operation_id``; ``OphNet2024_surgery.csv`` has ``video_id,surgery`` where ``surgery`` is a
comma-separated id list whose first id is the primary surgery. Overlapping segments and segments
past a video's duration occur in the released files and are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from asklepios_sdk import ComponentError

__all__ = [
    "LOCA_COLUMNS",
    "AnnotationError",
    "VideoInfo",
    "VideoRecord",
    "parse_surgeries",
    "primary_surgery",
    "read_activitynet",
    "read_loca_csv",
    "read_surgery_csv",
    "read_video_info",
    "records_from_table",
]

LOCA_COLUMNS: dict[str, type] = {
    "video_id": str,
    "start": float,
    "end": float,
    "split": str,
    "surgery_id": int,
    "phase_id": int,
    "operation_id": int,
}
"""The typed columns of a localisation CSV (``operation_id`` is absent from the merged file)."""

_OPTIONAL = ("operation_id",)


class AnnotationError(ComponentError):
    """An annotation file is missing, malformed or inconsistent; the message names file and row."""


def _read_csv(path: str | Path) -> pd.DataFrame:
    file = Path(path)
    if not file.is_file():
        raise AnnotationError(f"{file}: no such annotation file")
    # utf-8-sig strips the byte-order mark that three of the four OphNet2024 CSVs start with
    return pd.read_csv(file, encoding="utf-8-sig", dtype=str, keep_default_na=False)


def _typed(table: pd.DataFrame, column: str, kind: type, file: str | Path) -> pd.Series:
    values = table[column].str.strip()
    if kind is str:
        return values
    converted = pd.to_numeric(values, errors="coerce")
    bad = converted.isna() | (values == "")
    if kind is int:
        bad |= converted.notna() & (converted != converted.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AnnotationError(
            f"{file}: line {row + 2}: column {column!r} is "
            f"{table[column].iloc[row]!r}, not {'an integer' if kind is int else 'a number'}"
        )
    return converted.astype(np.int64 if kind is int else np.float64)


def read_loca_csv(path: str | Path) -> pd.DataFrame:
    """Read an OphNet2024 localisation CSV into typed columns, one row per clip.

    Raises:
        AnnotationError: a column is missing, a value does not parse, or ``end < start``; the
            message names the file and line.
    """
    raw = _read_csv(path)
    required = [c for c in LOCA_COLUMNS if c not in _OPTIONAL]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise AnnotationError(
            f"{path}: columns {missing} missing (found {list(raw.columns)}); an OphNet "
            f"localisation CSV has {list(LOCA_COLUMNS)}"
        )
    table = pd.DataFrame(
        {c: _typed(raw, c, kind, path) for c, kind in LOCA_COLUMNS.items() if c in raw.columns}
    )
    backwards = np.flatnonzero((table["end"] < table["start"]).to_numpy())
    if len(backwards):
        row = int(backwards[0])
        raise AnnotationError(
            f"{path}: line {row + 2}: end {table['end'].iloc[row]} < start "
            f"{table['start'].iloc[row]} (video {table['video_id'].iloc[row]}); "
            f"{len(backwards)} such row(s)"
        )
    return table


def parse_surgeries(text: str) -> list[int]:
    """Return the surgery ids of a ``surgery`` field (``"12,3"`` -> ``[12, 3]``)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        ids = [int(p) for p in parts if p]
    except ValueError as err:
        raise AnnotationError(f"surgery field {text!r} is not a list of integer ids") from err
    if not ids:
        raise AnnotationError(f"surgery field {text!r} lists no id")
    return ids


def primary_surgery(text: str) -> int:
    """Return the primary surgery of a ``surgery`` field: its first id."""
    return parse_surgeries(text)[0]


def read_surgery_csv(path: str | Path) -> pd.DataFrame:
    """Read ``OphNet2024_surgery.csv``: ``video_id``, ``surgeries`` (list) and ``primary``."""
    raw = _read_csv(path)
    if list(raw.columns[:2]) != ["video_id", "surgery"]:
        raise AnnotationError(
            f"{path}: columns {list(raw.columns)}; the surgery CSV has video_id,surgery"
        )
    surgeries = []
    for row, text in enumerate(raw["surgery"]):
        try:
            surgeries.append(parse_surgeries(text))
        except AnnotationError as err:
            raise AnnotationError(f"{path}: line {row + 2}: {err}") from err
    return pd.DataFrame(
        {
            "video_id": raw["video_id"].str.strip(),
            "surgeries": surgeries,
            "primary": [ids[0] for ids in surgeries],
        }
    )


@dataclass(frozen=True)
class VideoInfo:
    """Frame rate and duration (seconds) of one video."""

    fps: float
    duration: float


@dataclass(frozen=True)
class VideoRecord:
    """One video's annotations, in seconds, in file order.

    Attributes:
        video_id: the video's id.
        split: its OphNet split (``train``, ``val`` or ``test``).
        segments: ``[N, 2]`` float64 ``(start, end)`` in seconds.
        labels: ``[N]`` int64 labels of the chosen level.
        surgery_ids: ``[N]`` int64 per-clip surgery ids (-1 where unknown).
        info: frame rate and duration, when known.
        surgeries: video-level surgery ids (first = primary), when known.
    """

    video_id: str
    split: str
    segments: np.ndarray
    labels: np.ndarray
    surgery_ids: np.ndarray
    info: VideoInfo | None = None
    surgeries: tuple[int, ...] = field(default_factory=tuple)

    def replace_annotations(
        self, segments: np.ndarray, labels: np.ndarray, surgery_ids: np.ndarray
    ) -> VideoRecord:
        """Return a copy with other segments and labels."""
        return VideoRecord(
            self.video_id, self.split, segments, labels, surgery_ids, self.info, self.surgeries
        )


def records_from_table(
    table: pd.DataFrame,
    level: str,
    info: Mapping[str, VideoInfo] | None = None,
    surgeries: Mapping[str, Iterable[int]] | None = None,
) -> list[VideoRecord]:
    """Group a localisation table by video (first-appearance order, rows in file order)."""
    column = f"{level}_id"
    if column not in table.columns:
        raise AnnotationError(
            f"the table has no {column!r} column (columns {list(table.columns)}); the merged "
            "phase file has phase labels only: use level 'phase'"
        )
    records = []
    for video_id, rows in table.groupby("video_id", sort=False):
        splits = rows["split"].unique()
        if len(splits) != 1:
            raise AnnotationError(f"video {video_id} is in several splits {list(splits)}")
        records.append(
            VideoRecord(
                video_id=str(video_id),
                split=str(splits[0]),
                segments=rows[["start", "end"]].to_numpy(np.float64),
                labels=rows[column].to_numpy(np.int64),
                surgery_ids=rows["surgery_id"].to_numpy(np.int64),
                info=(info or {}).get(str(video_id)),
                surgeries=tuple((surgeries or {}).get(str(video_id), ())),
            )
        )
    return records


def read_activitynet(path: str | Path) -> tuple[str, list[VideoRecord]]:
    """Read an ActivityNet-style JSON (``version``, ``database``); return version and videos.

    The file is read as UTF-8 (the reference code opens it as ``gbk``; the content is ASCII).
    """
    file = Path(path)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
        database = document["database"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise AnnotationError(
            f"{file}: not an ActivityNet-style JSON with a 'database' ({err})"
        ) from err
    records = []
    for video_id, entry in database.items():
        annotations = entry.get("annotations", [])
        segments = np.asarray([a["segment"] for a in annotations], dtype=np.float64).reshape(-1, 2)
        labels = np.asarray([int(a["label_id"]) for a in annotations], dtype=np.int64)
        backwards = np.flatnonzero(segments[:, 1] < segments[:, 0])
        if len(backwards):
            raise AnnotationError(
                f"{file}: video {video_id}: segment {segments[backwards[0]].tolist()} ends "
                "before it starts"
            )
        info = None
        if "fps" in entry:
            info = VideoInfo(float(entry["fps"]), float(entry.get("duration", 1e8)))
        records.append(
            VideoRecord(
                video_id=str(video_id),
                split=str(entry.get("subset", "")).lower(),
                segments=segments,
                labels=labels,
                surgery_ids=np.full(len(labels), -1, dtype=np.int64),
                info=info,
            )
        )
    return str(document.get("version", "")), records


def read_video_info(path: str | Path) -> dict[str, VideoInfo]:
    """Read fps and duration per video from a CSV (``video_id,fps,duration``) or a TAL JSON."""
    file = Path(path)
    if file.suffix.lower() == ".json":
        _, records = read_activitynet(file)
        return {r.video_id: r.info for r in records if r.info is not None}
    raw = _read_csv(file)
    missing = [c for c in ("video_id", "fps", "duration") if c not in raw.columns]
    if missing:
        raise AnnotationError(
            f"{file}: columns {missing} missing; video info is video_id,fps,duration"
        )
    fps = _typed(raw, "fps", float, file)
    duration = _typed(raw, "duration", float, file)
    return {
        str(v).strip(): VideoInfo(float(f), float(d))
        for v, f, d in zip(raw["video_id"], fps, duration, strict=True)
    }
