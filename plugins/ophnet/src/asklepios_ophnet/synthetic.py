"""Synthetic clip-feature sequences with planted segments, for runs and tests without OphNet data.

Each class ``k`` has a mean shift ``mu_k ~ N(0, shift^2 I_C)``. A video of ``T`` steps gets
non-overlapping segments at random places, each of a random class; its features are Gaussian
noise (std ``noise``) plus ``mu_k`` on the steps of a class-``k`` segment. A model has to find
where the shift starts and ends, which is the localisation problem in miniature. The grid is the
step index (1 step = 1 s), so segments are ``[start, end]`` in steps.
"""

from __future__ import annotations

import numpy as np
import torch
from asklepios_sdk import BuildContext, DataFacts
from asklepios_sdk.sequences import IGNORE_INDEX

from asklepios_ophnet.annotations import VideoInfo, VideoRecord
from asklepios_ophnet.datasets import FeatureSplit, RecordDataset, sequence_facts
from asklepios_ophnet.features import FeatureGrid
from asklepios_ophnet.params import SyntheticSequencesParams

__all__ = ["ArrayFeatures", "SyntheticSequences", "plant_segments"]

_SPLITS = ("train", "val", "test")


class ArrayFeatures:
    """Features held in memory, by video id (picklable)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def __call__(self, video_id: str) -> np.ndarray:
        return self.arrays[video_id]


def plant_segments(
    length: int, count: int, lengths: tuple[int, int], rng: np.random.Generator
) -> np.ndarray:
    """Place ``count`` non-overlapping integer segments ``[start, end)`` in ``length`` steps."""
    sizes = rng.integers(lengths[0], lengths[1] + 1, size=count)
    free = length - int(sizes.sum())
    cuts = np.sort(rng.integers(0, free + 1, size=count))  # gaps before each segment
    starts = cuts + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return np.stack([starts, starts + sizes], axis=1)


class SyntheticSequences(RecordDataset):
    """Generate feature sequences with planted class-specific segments (a localisation toy).

    Lengths, segment counts and lengths follow the params; the data depend on ``data_seed``
    only, so runs with different seeds see the same videos.
    """

    where = "ophnet.synthetic"
    level = "phase"

    def __init__(self, params: SyntheticSequencesParams, ctx: BuildContext) -> None:
        self.params = params
        rng = np.random.default_rng([params.data_seed, 0])
        means = rng.normal(0.0, params.shift, size=(params.num_classes, params.feature_dim))
        arrays: dict[str, np.ndarray] = {}
        records = []
        sizes = {"train": params.train, "val": params.val, "test": params.test}
        for split_id, split in enumerate(_SPLITS):
            for i in range(sizes[split]):
                video_rng = np.random.default_rng([params.data_seed, split_id + 1, i])
                length = int(video_rng.integers(params.min_length, params.max_length + 1))
                count = int(video_rng.integers(params.segments[0], params.segments[1] + 1))
                segments = plant_segments(length, count, params.segment_length, video_rng)
                labels = video_rng.integers(0, params.num_classes, size=count)
                features = video_rng.normal(0.0, params.noise, size=(length, params.feature_dim))
                for (start, end), label in zip(segments, labels, strict=True):
                    features[start:end] += means[label]
                video_id = f"{split}_{i:04d}"
                arrays[video_id] = features.astype(np.float32)
                records.append(
                    VideoRecord(
                        video_id=video_id,
                        split=split,
                        segments=segments.astype(np.float64),
                        labels=labels.astype(np.int64),
                        surgery_ids=np.full(count, -1, dtype=np.int64),
                        info=VideoInfo(fps=1.0, duration=float(length)),
                    )
                )
        self.source = ArrayFeatures(arrays)
        self._build(records)

    def _build(self, records: list[VideoRecord]) -> None:
        params = self.params
        self.records = records
        labels = np.concatenate([r.labels for r in records])
        self.segment_classes = max(params.num_classes, int(labels.max()) + 1)
        with_background = params.frame_labels and params.background == "class"
        background = self.segment_classes if with_background else IGNORE_INDEX
        self.background_class = background if with_background else None
        grid = FeatureGrid(fps=1.0, stride=1, num_frames=0)
        self.splits = {}
        for split in _SPLITS:
            rows = [r for r in records if r.split == split]
            self.splits[split] = FeatureSplit(
                rows, self.source, [grid] * len(rows), params.frame_labels, background
            )
        self.split_names = _SPLITS

    def with_records(self, records: list[VideoRecord]) -> SyntheticSequences:
        clone = object.__new__(type(self))
        clone.params, clone.source = self.params, self.source
        clone._build(records)
        return clone

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.splits[name]

    def facts(self) -> DataFacts:
        return sequence_facts(
            num_samples=len(self.splits["train"]),
            segment_classes=self.segment_classes,
            background_class=self.background_class,
            feature_dim=self.params.feature_dim,
            level=self.level,
        )
