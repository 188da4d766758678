"""Per-video feature files and the feature grid.

A feature file holds one video's ``[T, C]`` clip features. ``.npy`` files are read with
``allow_pickle=False``. The released OphNet baselines store ``.pkl`` files, and unpickling runs
whatever code the file names, so they are read only when the caller says the files are trusted;
:func:`convert_pickles` turns trusted ``.pkl`` files into ``.npy`` once.

Grid: feature step ``t`` covers frames ``[t * stride, t * stride + num_frames)``, so its centre is
at ``(t * stride + num_frames / 2) / fps`` seconds and a time ``s`` in seconds sits at grid
position ``s * fps / stride - 0.5 * num_frames / stride`` (ActionFormer's convention; small
negative positions are kept).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from asklepios_sdk import ComponentError
from asklepios_sdk.io import write_atomic

__all__ = [
    "FeatureGrid",
    "convert_pickles",
    "frame_labels_from_segments",
    "load_features",
]

_PICKLE_FIX = (
    "unpickling runs code stored in the file; if you trust these files, set "
    "'trust_pickle: true' (or pass --trust-pickle), or convert them once with "
    "'asklepios ophnet pkl-to-npy SRC DST --trust-pickle' and read the .npy files"
)


def load_features(path: str | Path, trust_pickle: bool = False) -> np.ndarray:
    """Read one video's ``[T, C]`` features as float32.

    Raises:
        ComponentError: a ``.pkl`` file without ``trust_pickle``, an unreadable file, or an
            array that is not two-dimensional.
    """
    file = Path(path)
    if file.suffix == ".pkl":
        if not trust_pickle:
            raise ComponentError(f"{file}: refusing to unpickle a feature file: {_PICKLE_FIX}")
        with open(file, "rb") as handle:
            value = pickle.load(handle)
    else:
        try:
            value = np.load(file, allow_pickle=False)
        except ValueError as err:
            raise ComponentError(f"{file}: not a plain .npy array ({err})") from err
    array = np.asarray(value, dtype=np.float32)
    if array.ndim != 2:
        raise ComponentError(f"{file}: features of shape {array.shape}; expected [T, C]")
    return array


def _saver(array: np.ndarray) -> Callable[[Path], None]:
    def save(tmp: Path) -> None:
        np.save(tmp, array, allow_pickle=False)

    return save


def convert_pickles(source: str | Path, target: str | Path, trust_pickle: bool) -> list[Path]:
    """Convert every ``*.pkl`` feature file in ``source`` to ``*.npy`` in ``target``.

    Each file is written atomically; existing ``.npy`` files are replaced. Returns the files
    written.

    Raises:
        ComponentError: ``trust_pickle`` is false, or ``source`` holds no ``.pkl`` file.
    """
    if not trust_pickle:
        raise ComponentError(f"pkl-to-npy: {_PICKLE_FIX}")
    files = sorted(Path(source).glob("*.pkl"))
    if not files:
        raise ComponentError(f"pkl-to-npy: no .pkl file in {source}")
    out_dir = Path(target)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file in files:
        array = load_features(file, trust_pickle=True)
        out = out_dir / f"{file.stem}.npy"
        write_atomic(out, write=_saver(array))
        written.append(out)
    return written


@dataclass(frozen=True)
class FeatureGrid:
    """Seconds <-> feature steps for one video.

    Attributes:
        fps: the video's frame rate.
        stride: frames between steps (``feat_stride * downsample_rate``).
        num_frames: frames each step sees.
    """

    fps: float
    stride: int = 16
    num_frames: int = 16

    @property
    def offset(self) -> float:
        """Grid offset ``0.5 * num_frames / stride``."""
        return 0.5 * self.num_frames / self.stride

    @property
    def step_seconds(self) -> float:
        """Seconds between two steps."""
        return self.stride / self.fps

    @property
    def time_offset(self) -> float:
        """Time of step 0, in seconds (the centre of its window)."""
        return 0.5 * self.num_frames / self.fps

    def to_grid(self, seconds: np.ndarray) -> np.ndarray:
        """Map seconds to grid positions: ``s * fps / stride - 0.5 * num_frames / stride``."""
        return np.asarray(seconds, dtype=np.float64) * self.fps / self.stride - self.offset

    def to_seconds(self, grid: np.ndarray) -> np.ndarray:
        """Map grid positions back to seconds."""
        return np.asarray(grid, dtype=np.float64) * self.step_seconds + self.time_offset


def frame_labels_from_segments(
    length: int, segments: np.ndarray, labels: np.ndarray, background: int
) -> np.ndarray:
    """Label each step ``t`` with the segment whose ``[start, end)`` holds it.

    Where segments overlap, the later one (file order) wins; steps in no segment get
    ``background`` (a class id, or :data:`~asklepios_sdk.sequences.IGNORE_INDEX`).
    """
    out = np.full(length, background, dtype=np.int64)
    steps = np.arange(length)
    for (start, end), label in zip(np.asarray(segments).reshape(-1, 2), labels, strict=True):
        out[(steps >= start) & (steps < end)] = label
    return out
