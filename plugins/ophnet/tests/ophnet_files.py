"""Test helpers: writers of tiny OphNet-format fixture files (CSV with BOM, ActivityNet JSON,
features) and a few training steps of a model on one batch."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

LOCA_HEADER = "video_id,start,end,split,surgery_id,phase_id,operation_id"


def write_csv(path: Path, header: str, rows: Iterable[Sequence[Any]], bom: bool = True) -> Path:
    """Write ``rows`` under ``header``; with ``bom``, start the file with a UTF-8 BOM."""
    lines = [header, *(",".join(str(v) for v in row) for row in rows)]
    path.write_bytes(("\ufeff" if bom else "").encode() + ("\n".join(lines) + "\n").encode())
    return path


def write_activitynet(path: Path, videos: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write an ActivityNet-style JSON: ``videos[id] = {fps, duration, subset, segments}``.

    ``segments`` is a list of ``(start, end, label)`` in seconds.
    """
    database = {
        vid: {
            "duration": v["duration"],
            "fps": v["fps"],
            "subset": v["subset"],
            "annotations": [
                {"label": str(lab), "label_id": lab, "segment": [s, e]}
                for s, e, lab in v["segments"]
            ],
        }
        for vid, v in videos.items()
    }
    path.write_text(json.dumps({"version": "OphNet2024", "database": database}))
    return path


def write_features(folder: Path, lengths: Mapping[str, int], width: int, ext: str = ".npy") -> Path:
    """Write ``arange``-valued ``[T, width]`` features per video (row t starts at t * width)."""
    folder.mkdir(parents=True, exist_ok=True)
    for vid, length in lengths.items():
        array = np.arange(length * width, dtype=np.float32).reshape(length, width)
        if ext == ".npy":
            np.save(folder / f"{vid}.npy", array)
        else:
            import pickle

            (folder / f"{vid}.pkl").write_bytes(pickle.dumps(array))
    return folder


TAL_VIDEOS: dict[str, dict[str, Any]] = {
    # fps 25, stride 16: one step = 0.64 s, step 0 centred at 0.32 s
    "case_a": {
        "fps": 25.0,
        "duration": 12.8,
        "subset": "train",
        "segments": [(0.32, 2.24, 0), (3.52, 6.08, 2), (6.40, 9.60, 1)],
    },
    "case_b": {
        "fps": 25.0,
        "duration": 9.6,
        "subset": "train",
        "segments": [(1.60, 4.80, 1), (5.12, 8.00, 0)],
    },
    "case_c": {
        "fps": 30.0,
        "duration": 8.0,
        "subset": "val",
        "segments": [(0.50, 3.00, 2), (3.00, 6.50, 0)],
    },
    "case_d": {
        "fps": 25.0,
        "duration": 6.4,
        "subset": "test",
        "segments": [(0.96, 3.20, 1), (3.52, 5.76, 2)],
    },
    "case_e": {
        "fps": 25.0,
        "duration": 10.24,
        "subset": "test",
        "segments": [(0.32, 4.48, 0), (5.12, 9.28, 1)],
    },
}
"""Five videos with segments in seconds, every split non-empty."""

TAL_LENGTHS = {"case_a": 20, "case_b": 15, "case_c": 15, "case_d": 10, "case_e": 16}


def write_tal_fixture(root: Path, width: int = 6, ext: str = ".npy") -> tuple[Path, Path]:
    """Write the TAL JSON and features of :data:`TAL_VIDEOS`; return (json, features dir)."""
    root.mkdir(parents=True, exist_ok=True)
    annotations = write_activitynet(root / "tal.json", TAL_VIDEOS)
    features = write_features(root / "features", TAL_LENGTHS, width, ext)
    return annotations, features


LOCA_ROWS = [
    # video, start, end, split, surgery, phase, operation
    ("case_0001", 0.00, 5.00, "train", 4, 2, 10),
    ("case_0001", 6.00, 9.00, "train", 5, 2, 11),
    ("case_0001", 9.00, 12.50, "train", 6, 3, 12),
    ("case_0002", 0.50, 3.25, "val", 1, 0, 3),
    ("case_0002", 3.25, 7.75, "val", 1, 1, 4),
    ("case_0002", 7.00, 8.00, "val", 2, 1, 4),
    ("case_0003", 1.00, 2.00, "test", 0, 0, 0),
    ("case_0003", 2.00, 4.40, "test", 0, 3, 1),
]
"""3 videos, 8 rows, mixed splits (one overlap in case_0002, as the released files have)."""

SURGERY_ROWS = [("case_0001", '"12,3"'), ("case_0002", "7"), ("case_0003", '"5,1,9"')]


def write_loca_fixture(root: Path) -> tuple[Path, Path]:
    """Write the BOM-prefixed localisation and surgery CSVs; return their paths."""
    root.mkdir(parents=True, exist_ok=True)
    loca = write_csv(root / "OphNet2024_loca_all.csv", LOCA_HEADER, LOCA_ROWS)
    surgery = write_csv(root / "OphNet2024_surgery.csv", "video_id,surgery", SURGERY_ROWS)
    return loca, surgery


def fit_steps(
    model: Any, loss: Any, optimizer: Any, batch: Any, steps: int = 60
) -> tuple[float, float]:
    """Train ``model`` on ``batch`` for ``steps`` steps; return the first and last total loss."""
    first = last = float("nan")
    for step in range(steps):
        result = loss(model(batch), batch)
        last = float(result.total.detach())
        first = last if step == 0 else first
        optimizer.zero_grad()
        result.total.backward()
        optimizer.step()
    return first, last
