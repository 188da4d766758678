"""OphNet datasets: annotation records, clip-feature sequences, and the challenge-label wrapper.

One item is one video. ``ophnet.tal_features`` yields the sequence samples of
:mod:`asklepios_sdk.sequences` (``features [T, C]``, ``segments [N, 2]`` on the feature grid,
``segment_labels``, optional ``frame_labels``, ``index``, ``step_seconds``/``time_offset``,
``meta``) and its splits declare :class:`~asklepios_sdk.SequenceCollate`. ``ophnet.annotations``
yields each video's annotation record in seconds (its segments are the sequence axis).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import (
    BuildContext,
    ComponentError,
    DataFacts,
    Dataset,
    DatasetWrapper,
    SequenceCollate,
)
from asklepios_sdk.sequences import IGNORE_INDEX

from asklepios_ophnet.annotations import (
    AnnotationError,
    VideoInfo,
    VideoRecord,
    read_activitynet,
    read_loca_csv,
    read_surgery_csv,
    read_video_info,
    records_from_table,
)
from asklepios_ophnet.features import FeatureGrid, frame_labels_from_segments, load_features
from asklepios_ophnet.labels import challenge_records, challenge_remap, merge_consecutive_phases
from asklepios_ophnet.params import (
    AnnotationsDatasetParams,
    ChallengeLabelsParams,
    TALFeaturesDatasetParams,
)

__all__ = [
    "AnnotationSplit",
    "AnnotationsDataset",
    "ChallengeLabels",
    "FeatureFiles",
    "FeatureSplit",
    "RecordDataset",
    "TALFeaturesDataset",
]

TASK = "temporal_localization"


class AnnotationSplit(torch.utils.data.Dataset):
    """One split of annotation records; a batch pads each video's segment list."""

    collate_fn = SequenceCollate(
        step_keys=("segments", "segment_labels", "surgery_ids"), segment_keys=()
    )

    def __init__(self, records: Sequence[VideoRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        return {
            "segments": torch.from_numpy(record.segments.copy()),
            "segment_labels": torch.from_numpy(record.labels.copy()),
            "surgery_ids": torch.from_numpy(record.surgery_ids.copy()),
            "index": index,
            "meta": {
                "video_id": record.video_id,
                "split": record.split,
                "surgeries": list(record.surgeries),
                "primary_surgery": record.surgeries[0] if record.surgeries else None,
            },
        }


class FeatureFiles:
    """Read a video's features from ``<folder>/<prefix><video_id><ext>`` (picklable)."""

    def __init__(
        self, folder: str, prefix: str, ext: str, trust_pickle: bool, downsample: int
    ) -> None:
        self.folder, self.prefix, self.ext = folder, prefix, ext
        self.trust_pickle, self.downsample = trust_pickle, downsample

    def path(self, video_id: str) -> Path:
        """Return the feature file of ``video_id``."""
        return Path(self.folder) / f"{self.prefix}{video_id}{self.ext}"

    def __call__(self, video_id: str) -> np.ndarray:
        array = load_features(self.path(video_id), self.trust_pickle)
        return np.ascontiguousarray(array[:: self.downsample])


class FeatureSplit(torch.utils.data.Dataset):
    """One split of videos as sequence samples; declares the sequence collate.

    Args:
        records: the split's videos (annotations in seconds).
        features: ``video_id -> [T, C]`` array (picklable).
        grids: the feature grid of each video.
        frame_labels: add per-step labels; background: their label outside every segment.
        multiple_of: pad batches to a multiple of this many steps.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        features: Callable[[str], np.ndarray],
        grids: Sequence[FeatureGrid],
        frame_labels: bool,
        background: int,
        multiple_of: int = 1,
    ) -> None:
        self.records = list(records)
        self.features = features
        self.grids = list(grids)
        self.frame_labels = frame_labels
        self.background = background
        self.collate_fn = SequenceCollate(multiple_of=multiple_of)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record, grid = self.records[index], self.grids[index]
        features = self.features(record.video_id)
        segments = grid.to_grid(record.segments).astype(np.float32)
        sample: dict[str, Any] = {
            "features": torch.from_numpy(features),
            "segments": torch.from_numpy(segments),
            "segment_labels": torch.from_numpy(record.labels.copy()),
            "index": index,
            "step_seconds": grid.step_seconds,
            "time_offset": grid.time_offset,
            "meta": {
                "video_id": record.video_id,
                "fps": grid.fps,
                "duration": record.info.duration if record.info else None,
            },
        }
        if self.frame_labels:
            labels = frame_labels_from_segments(
                len(features), segments, record.labels, self.background
            )
            sample["frame_labels"] = torch.from_numpy(labels)
        return sample


def _select(
    records: Sequence[VideoRecord], splits: Mapping[str, list[str]], where: str
) -> dict[str, list[VideoRecord]]:
    chosen = {
        name: [r for r in records if r.split in set(values)] for name, values in splits.items()
    }
    if not chosen.get("train"):
        found = sorted({r.split for r in records})
        raise AnnotationError(
            f"{where}: no video for the training split (splits {dict(splits)}, the file has "
            f"{found}); set 'splits' to the values the file uses"
        )
    return {name: rows for name, rows in chosen.items() if rows}


def _num_classes(records: Sequence[VideoRecord], given: int | None, where: str) -> int:
    labels = np.concatenate([r.labels for r in records]) if records else np.zeros(0, np.int64)
    largest = int(labels.max()) if len(labels) else -1
    if (labels < 0).any():
        raise AnnotationError(f"{where}: negative label {int(labels.min())}")
    if given is not None and largest >= given:
        raise AnnotationError(
            f"{where}: label {largest} occurs but num_classes is {given}; raise num_classes "
            "or leave it unset"
        )
    return given if given is not None else max(largest + 1, 1)


def _fps(record: VideoRecord) -> float:
    if record.info is None:  # the readers reject such videos before splits are built
        raise AnnotationError(f"video {record.video_id} has no fps")
    return record.info.fps


class RecordDataset(Dataset):
    """A dataset of per-video annotation records that ``ophnet.challenge_labels`` can relabel."""

    records: list[VideoRecord]
    level: str
    where: str = "ophnet"

    @abstractmethod
    def with_records(self, records: list[VideoRecord]) -> RecordDataset:
        """Return this dataset over other records (same files, settings and splits)."""


class AnnotationsDataset(RecordDataset):
    """Read OphNet2024 localisation and surgery CSVs as typed per-video annotation records.

    Each item is one video: ``segments`` ``[N, 2]`` in seconds, ``segment_labels`` (phase or
    operation ids), ``surgery_ids`` (per clip) and ``meta`` (video id, split, the surgery list
    and its first id, the primary surgery). ``label_space: challenge`` applies the challenge rule
    of :mod:`asklepios_ophnet.labels` to the whole file first.
    """

    where = "ophnet.annotations"

    def __init__(self, params: AnnotationsDatasetParams, ctx: BuildContext) -> None:
        self.params = params
        self.level = params.level
        table = read_loca_csv(params.file)
        if params.label_space == "challenge":
            table = challenge_remap(
                table, params.min_count, params.other_phase, params.other_operation
            )
            if params.level == "phase":
                table = merge_consecutive_phases(table)
        surgeries: dict[str, list[int]] = {}
        if params.surgery_file is not None:
            frame = read_surgery_csv(params.surgery_file)
            surgeries = dict(zip(frame["video_id"], frame["surgeries"], strict=True))
        self.table = table
        self._build(records_from_table(table, params.level, surgeries=surgeries))

    def _build(self, records: list[VideoRecord]) -> None:
        self.records = records
        default = None
        if self.params.label_space == "challenge" and self.params.num_classes is None:
            other = (
                self.params.other_phase if self.level == "phase" else self.params.other_operation
            )
            default = other + 1
        self.num_classes = _num_classes(records, self.params.num_classes or default, self.where)
        self.splits = {
            name: AnnotationSplit(rows)
            for name, rows in _select(records, self.params.splits, self.where).items()
        }
        self.split_names = tuple(self.splits)

    def with_records(self, records: list[VideoRecord]) -> AnnotationsDataset:
        clone = object.__new__(type(self))
        clone.params, clone.level, clone.table = self.params, self.level, self.table
        clone._build(records)
        return clone

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.splits[name]

    def facts(self) -> DataFacts:
        train = self.splits["train"].records
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for record in train:
            np.add.at(counts, record.labels, 1)
        return DataFacts(
            task=TASK,
            num_samples=len(train),
            num_classes=self.num_classes,
            class_counts=tuple(int(c) for c in counts),
            class_names=tuple(str(c) for c in range(self.num_classes)),
            extras={"ophnet.level": self.level, "ophnet.segment_classes": self.num_classes},
        )


class TALFeaturesDataset(RecordDataset):
    """Load per-video [T, C] clip features with their segments on the feature grid.

    Annotations come from an ActivityNet-style JSON (``OphNet2024_phase.json``) or a localisation
    CSV with fps/duration from ``video_info`` (or ``default_fps``). Seconds become grid positions
    ``s * fps / stride - 0.5 * num_frames / stride`` with ``stride = feat_stride *
    downsample_rate``. With ``frame_labels``, each step also gets the label of the segment that
    holds it; steps in no segment get an extra last class (``background: class``) or -100.
    """

    where = "ophnet.tal_features"

    def __init__(self, params: TALFeaturesDatasetParams, ctx: BuildContext) -> None:
        self.params = params
        self.level = params.level
        self.source = FeatureFiles(
            params.features_dir,
            params.file_prefix,
            params.file_ext,
            params.trust_pickle,
            params.downsample_rate,
        )
        self._build(self._read_records())

    def _read_records(self) -> list[VideoRecord]:
        params = self.params
        path = Path(params.annotations)
        if path.suffix.lower() == ".json":
            _, records = read_activitynet(path)
            if params.label_space == "challenge":
                other = params.other_phase if self.level == "phase" else params.other_operation
                records = challenge_records(
                    records, params.min_count, other, merge=self.level == "phase"
                )
        else:
            table = read_loca_csv(path)
            if params.label_space == "challenge":
                table = challenge_remap(
                    table, params.min_count, params.other_phase, params.other_operation
                )
                if self.level == "phase":
                    table = merge_consecutive_phases(table)
            info = read_video_info(params.video_info) if params.video_info else {}
            records = records_from_table(table, self.level, info=info)
        if params.default_fps is not None:
            records = [
                VideoRecord(
                    r.video_id,
                    r.split,
                    r.segments,
                    r.labels,
                    r.surgery_ids,
                    VideoInfo(params.default_fps, r.info.duration if r.info else 1e8),
                    r.surgeries,
                )
                for r in records
            ]
        unknown = [r.video_id for r in records if r.info is None]
        if unknown:
            raise AnnotationError(
                f"{self.where}: {len(unknown)} video(s) have no fps (first {unknown[:3]}); set "
                "default_fps, or video_info for CSV annotations"
            )
        missing = [r.video_id for r in records if not self.source.path(r.video_id).is_file()]
        if missing and self.params.missing_features == "error":
            raise AnnotationError(
                f"{self.where}: no feature file for {len(missing)} of {len(records)} videos "
                f"(first: {self.source.path(missing[0])}); check features_dir/file_prefix/"
                "file_ext, or set 'missing_features: skip' to leave them out"
            )
        return [r for r in records if r.video_id not in set(missing)]

    def _build(self, records: list[VideoRecord]) -> None:
        params = self.params
        self.records = records
        self.segment_classes = _num_classes(records, params.num_classes, self.where)
        with_background = params.frame_labels and params.background == "class"
        background = self.segment_classes if with_background else IGNORE_INDEX
        stride = params.feat_stride * params.downsample_rate
        self.splits: dict[str, FeatureSplit] = {}
        for name, rows in _select(records, params.splits, self.where).items():
            grids = [FeatureGrid(_fps(r), stride, params.num_frames) for r in rows]
            self.splits[name] = FeatureSplit(
                rows, self.source, grids, params.frame_labels, background, params.multiple_of
            )
        self.split_names = tuple(self.splits)
        self.background_class = background if with_background else None

    def with_records(self, records: list[VideoRecord]) -> TALFeaturesDataset:
        clone = object.__new__(type(self))
        clone.params, clone.level, clone.source = self.params, self.level, self.source
        clone._build(records)
        return clone

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.splits[name]

    def feature_dim(self) -> int:
        """Return the feature width C (read from the first training video)."""
        first = self.splits["train"]
        width = int(first.features(first.records[0].video_id).shape[1])
        expected = self.params.input_dim
        if expected is not None and expected != width:
            raise ComponentError(
                f"{self.where}: features have width {width}, input_dim is {expected}"
            )
        return width

    def facts(self) -> DataFacts:
        return sequence_facts(
            num_samples=len(self.splits["train"]),
            segment_classes=self.segment_classes,
            background_class=self.background_class,
            feature_dim=self.feature_dim(),
            level=self.level,
        )


def sequence_facts(
    num_samples: int,
    segment_classes: int,
    background_class: int | None,
    feature_dim: int,
    level: str,
) -> DataFacts:
    """Return the facts of a feature-sequence dataset (shared with ``ophnet.synthetic``)."""
    num_classes = segment_classes + (1 if background_class is not None else 0)
    names = [str(c) for c in range(segment_classes)]
    if background_class is not None:
        names.append("background")
    return DataFacts(
        task=TASK,
        num_samples=num_samples,
        num_classes=num_classes,
        class_names=tuple(names),
        num_features=feature_dim,
        in_channels=feature_dim,
        extras={
            "ophnet.level": level,
            "ophnet.segment_classes": segment_classes,
            "ophnet.background_class": background_class,
        },
    )


class ChallengeLabels(DatasetWrapper):
    """Apply OphNet2024's challenge labels: rare ids to "Others", then merge repeats.

    A label with fewer than ``min_count`` segments over every video of the wrapped dataset (all
    splits) becomes ``other_phase`` (51) or ``other_operation`` (106), by the wrapped dataset's
    level; at phase level consecutive segments of one label then merge into one. Wraps
    ``ophnet.annotations``, ``ophnet.tal_features`` or ``ophnet.synthetic``.
    """

    def __init__(self, params: ChallengeLabelsParams, ctx: BuildContext) -> None:
        self.params = params

    def wrap(self, inner: Dataset) -> Dataset:
        if not isinstance(inner, RecordDataset):
            raise ComponentError(
                f"ophnet.challenge_labels: wraps an OphNet dataset (ophnet.annotations, "
                f"ophnet.tal_features, ophnet.synthetic), not {type(inner).__name__}"
            )
        params = self.params
        other = params.other_phase if inner.level == "phase" else params.other_operation
        merge = params.merge if params.merge is not None else inner.level == "phase"
        relabelled = challenge_records(inner.records, params.min_count, other, merge)
        return super().wrap(inner.with_records(relabelled))
