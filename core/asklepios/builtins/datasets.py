"""Built-in datasets: scikit-learn digits, image folders, CSV manifests, MedMNIST, tabular CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset

from asklepios.builtins._data import (
    FileSplit,
    TensorSplit,
    classification_facts,
    list_class_folder,
    stratified_split,
)
from asklepios.builtins.params import (
    CsvDatasetParams,
    DigitsDatasetParams,
    ImageFolderDatasetParams,
    MedMNISTDatasetParams,
    TabularDatasetParams,
)

__all__ = [
    "CsvDataset",
    "DigitsDataset",
    "ImageFolderDataset",
    "MedMNISTDataset",
    "TabularDataset",
    "long_tail_counts",
]

SPLITS = ("train", "val", "test")


def long_tail_counts(n_max: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Return the geometric per-class sizes ``n_c = floor(n_max * ratio ** (-c / (K - 1)))``.

    This is the long-tailed profile of Cui et al. (CVPR 2019): class 0 keeps ``n_max`` samples
    and the last class ``n_max / imbalance_ratio``.
    """
    if num_classes == 1:
        return [n_max]
    return [
        max(1, int(n_max * imbalance_ratio ** (-c / (num_classes - 1)))) for c in range(num_classes)
    ]


class _SplitDataset(Dataset):
    """A dataset whose splits are built once and kept with their labels."""

    _splits: dict[str, torch.utils.data.Dataset]
    _labels: dict[str, np.ndarray | None]
    _manifest: tuple[str, dict[str, np.ndarray]] | None = None  # file name, lines per split

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name not in self._splits:
            raise ComponentError(
                f"{type(self).__name__} has no split {name!r}; it has {sorted(self._splits)}"
            )
        return self._splits[name]

    def labels(self, name: str) -> np.ndarray | None:
        self.split(name)
        return self._labels.get(name)

    def files(self, name: str) -> Iterator[tuple[int, str] | tuple[int, str, str]]:
        """Return ``(row, path)`` of every image file split ``name`` reads (none in memory),
        with the manifest line that lists it where a manifest does."""
        split = self.split(name)
        if not isinstance(split, FileSplit):
            return iter(())
        if self._manifest is None:
            return enumerate(split.paths)
        manifest, lines = self._manifest[0], self._manifest[1][name]
        return (
            (row, path, f"{manifest} line {line}")
            for row, (path, line) in enumerate(zip(split.paths, lines.tolist(), strict=True))
        )


class DigitsDataset(_SplitDataset):
    """Scikit-learn's bundled 8x8 handwritten digits, optionally upscaled and long-tailed.

    Balanced test and validation splits are held out per class first; the training split then
    keeps a geometric per-class profile ``n_c = n_max * imbalance_ratio ** (-c / 9)``.
    """

    def __init__(self, params: DigitsDatasetParams, ctx: BuildContext | None = None) -> None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
        if params.image_size != 8:
            images = torch.nn.functional.interpolate(
                images,
                size=(params.image_size, params.image_size),
                mode="bilinear",
                align_corners=False,
            ).clamp_(0, 1)
        if params.channels == 3:
            images = images.repeat(1, 3, 1, 1)
        labels = np.asarray(bunch.target, dtype=np.int64)
        rng = np.random.default_rng(params.seed)
        held = params.test_per_class + params.val_per_class
        per_class = {c: rng.permutation(np.flatnonzero(labels == c)) for c in range(10)}
        smallest = min(len(v) for v in per_class.values())
        if held >= smallest:
            raise ComponentError(
                f"core.digits: test_per_class + val_per_class = {held} leaves no training data "
                f"(the smallest class has {smallest} samples)"
            )
        sizes = long_tail_counts(smallest - held, 10, params.imbalance_ratio)
        index: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for c, idx in per_class.items():
            index["test"].append(idx[: params.test_per_class])
            index["val"].append(idx[params.test_per_class : held])
            index["train"].append(idx[held : held + sizes[c]])
        chosen_by_split = {name: np.sort(np.concatenate(parts)) for name, parts in index.items()}
        self._splits, self._labels = {}, {}
        for name, chosen in chosen_by_split.items():
            self._labels[name] = labels[chosen]
            self._splits[name] = TensorSplit(images[chosen], torch.as_tensor(labels[chosen]))
        self._facts = classification_facts(
            labels[chosen_by_split["train"]],
            10,
            [str(d) for d in range(10)],
            params.channels,
            (params.image_size, params.image_size),
        )

    def facts(self) -> DataFacts:
        return self._facts


def _pair(size: int | list[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


class ImageFolderDataset(_SplitDataset):
    """Images in ``root/<split>/<class>/`` or ``root/<class>/`` (split per class by fractions)."""

    def __init__(self, params: ImageFolderDatasetParams, ctx: BuildContext | None = None) -> None:
        root = Path(params.root).expanduser()
        if not root.is_dir():
            raise ComponentError(f"core.image_folder: root {root} is not a folder")
        size = _pair(params.image_size)
        self._splits, self._labels = {}, {}
        if (root / "train").is_dir():
            paths, labels, classes = list_class_folder(root / "train")
            parts = {"train": (paths, labels)}
            for name in ("val", "test"):
                if (root / name).is_dir():
                    p, lab, cls = list_class_folder(root / name)
                    if cls != classes:
                        raise ComponentError(
                            f"core.image_folder: {root / name} has classes {cls}, "
                            f"train has {classes}"
                        )
                    parts[name] = (p, lab)
        else:
            paths, labels, classes = list_class_folder(root)
            idx = stratified_split(labels, [params.val_fraction, params.test_fraction], params.seed)
            parts = {
                name: ([paths[i] for i in chosen], labels[chosen])
                for name, chosen in zip(SPLITS, idx, strict=True)
            }
        for name, (p, lab) in parts.items():
            self._splits[name] = FileSplit(p, lab, params.mode, size)
            self._labels[name] = lab
        self.split_names = tuple(parts)
        self._facts = classification_facts(
            parts["train"][1], len(classes), classes, 3 if params.mode == "RGB" else 1, size
        )

    def facts(self) -> DataFacts:
        return self._facts


def _read_csv(path: Path, component: str) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Return the header, the rows and the 1-based line each row starts on."""
    if not path.is_file():
        raise ComponentError(f"{component}: CSV file {path} does not exist")
    rows, lines = [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        end = 1  # the header's line (a quoted field may span lines: count from the reader)
        for row in reader:
            rows.append(row)
            lines.append(end + 1)
            end = reader.line_num
        header = list(reader.fieldnames or [])
    if not rows:
        raise ComponentError(f"{component}: {path} has no rows")
    return header, rows, lines


def _require_columns(header: list[str], columns: list[str], path: Path, component: str) -> None:
    missing = [c for c in columns if c not in header]
    if missing:
        raise ComponentError(f"{component}: {path} has no column(s) {missing}; it has {header}")


def _split_rows(
    rows: list[dict[str, str]],
    split_column: str | None,
    strata: np.ndarray,
    fractions: list[float],
    seed: int,
    path: Path,
    component: str,
) -> dict[str, np.ndarray]:
    if split_column is not None:
        values = np.asarray([row[split_column].strip().lower() for row in rows])
        unknown = sorted(set(values) - set(SPLITS))
        if unknown:
            raise ComponentError(
                f"{component}: {path} column {split_column!r} has values {unknown}; "
                f"use {list(SPLITS)}"
            )
        return {name: np.flatnonzero(values == name) for name in SPLITS if (values == name).any()}
    return dict(zip(SPLITS, stratified_split(strata, fractions, seed), strict=True))


class CsvDataset(_SplitDataset):
    """Images listed in a CSV manifest (path, label); other columns reach samples as ``meta``."""

    def __init__(self, params: CsvDatasetParams, ctx: BuildContext | None = None) -> None:
        path = Path(params.path).expanduser()
        header, rows, lines = _read_csv(path, "core.csv")
        _require_columns(header, [params.path_column, params.label_column], path, "core.csv")
        root = Path(params.root).expanduser() if params.root else path.parent
        raw_labels = [row[params.label_column] for row in rows]
        classes = sorted(set(raw_labels), key=lambda v: (not v.lstrip("-").isdigit(), _num(v), v))
        lookup = {name: i for i, name in enumerate(classes)}
        labels = np.asarray([lookup[v] for v in raw_labels], dtype=np.int64)
        paths = [str(root / row[params.path_column]) for row in rows]
        extra_cols = [
            c
            for c in header
            if c not in (params.path_column, params.label_column, params.split_column)
        ]
        index = _split_rows(
            rows,
            params.split_column,
            labels,
            [params.val_fraction, params.test_fraction],
            params.seed,
            path,
            "core.csv",
        )
        if "train" not in index or not len(index["train"]):
            raise ComponentError(f"core.csv: {path} gives an empty training split")
        size = _pair(params.image_size)
        self._splits, self._labels = {}, {}
        self._manifest = (
            path.name,
            {name: np.asarray(lines)[chosen] for name, chosen in index.items()},
        )
        for name, chosen in index.items():
            extras = {c: [rows[i][c] for i in chosen] for c in extra_cols}
            self._splits[name] = FileSplit(
                [paths[i] for i in chosen], labels[chosen], params.mode, size, extras
            )
            self._labels[name] = labels[chosen]
        self.split_names = tuple(index)
        self._facts = classification_facts(
            labels[index["train"]], len(classes), classes, 3 if params.mode == "RGB" else 1, size
        )

    def facts(self) -> DataFacts:
        return self._facts


def _num(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return 0.0


MEDMNIST_HELP = (
    "MedMNIST files are not downloaded by asklepios. Get '{name}' from "
    "https://zenodo.org/records/10519652 (or run `pip install medmnist` and "
    '`python -c "import medmnist; medmnist.INFO"` to see the names, then '
    "`python -m medmnist download`), put it at {path}, or set --set data.dataset.path=<file>."
)


class MedMNISTDataset(_SplitDataset):
    """A MedMNIST v2 ``.npz`` file from local disk (train/val/test images and labels).

    Single-label sets give ``label`` as a class index (task ``classification``); multi-label
    sets (ChestMNIST) give a 0/1 vector (task ``multilabel``).
    """

    def __init__(self, params: MedMNISTDatasetParams, ctx: BuildContext | None = None) -> None:
        path = Path(params.path).expanduser()
        if not path.is_file():
            raise ComponentError(
                f"core.medmnist: file {path} not found. "
                + MEDMNIST_HELP.format(name=path.name, path=path)
            )
        try:
            arrays = np.load(path)
            data = {key: arrays[key] for key in arrays.files}
        except (OSError, ValueError) as err:
            raise ComponentError(f"core.medmnist: cannot read {path}: {err}") from err
        missing = [
            f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in data
        ]
        if missing:
            raise ComponentError(
                f"core.medmnist: {path} lacks arrays {missing}; is it a MedMNIST file?"
            )
        multilabel = data["train_labels"].ndim == 2 and data["train_labels"].shape[1] > 1
        self._splits, self._labels = {}, {}
        train_images = torch.empty(0)
        for name in SPLITS:
            images = torch.from_numpy(np.ascontiguousarray(data[f"{name}_images"]))
            images = images.unsqueeze(1) if images.dim() == 3 else images.permute(0, 3, 1, 2)
            if params.as_rgb and images.shape[1] == 1:
                images = images.repeat(1, 3, 1, 1)
            raw = data[f"{name}_labels"].astype(np.int64)
            labels = raw if multilabel else raw.reshape(-1)
            self._splits[name] = TensorSplit(images.contiguous(), torch.from_numpy(labels))
            self._labels[name] = None if multilabel else labels
            if name == "train":
                train_images = images
        train = data["train_labels"].astype(np.int64)
        channels = int(train_images.shape[1])
        size = (int(train_images.shape[2]), int(train_images.shape[3]))
        if multilabel:
            self._facts = DataFacts(
                task="multilabel",
                num_samples=len(train),
                num_classes=int(train.shape[1]),
                class_counts=tuple(int(v) for v in train.sum(axis=0)),
                in_channels=channels,
                image_size=size,
            )
        else:
            flat = train.reshape(-1)
            self._facts = classification_facts(flat, int(flat.max()) + 1, None, channels, size)

    def facts(self) -> DataFacts:
        return self._facts


class TabularDataset(_SplitDataset):
    """Numeric features and a target from a CSV file; ``image`` holds the feature vector."""

    def __init__(self, params: TabularDatasetParams, ctx: BuildContext | None = None) -> None:
        path = Path(params.path).expanduser()
        header, rows, _ = _read_csv(path, "core.tabular")
        features = params.features or [
            c for c in header if c not in (params.target, params.split_column)
        ]
        _require_columns(header, [params.target, *features], path, "core.tabular")
        x = np.empty((len(rows), len(features)), dtype=np.float32)
        for j, column in enumerate(features):
            try:
                x[:, j] = [float(row[column]) for row in rows]
            except ValueError as err:
                raise ComponentError(
                    f"core.tabular: column {column!r} of {path} is not numeric ({err}); "
                    "list only numeric columns in 'features'"
                ) from err
        raw = [row[params.target] for row in rows]
        task = params.task
        if task == "auto":
            task = (
                "classification"
                if all(_is_int(v) for v in raw) or not all(_is_float(v) for v in raw)
                else "regression"
            )
        if task == "classification":
            classes = sorted(set(raw), key=lambda v: (_num(v), v))
            lookup = {name: i for i, name in enumerate(classes)}
            y = np.asarray([lookup[v] for v in raw], dtype=np.int64)
            strata = y
        else:
            y = np.asarray([float(v) for v in raw], dtype=np.float32)
            strata = np.zeros(len(y), dtype=np.int64)
        index = _split_rows(
            rows,
            params.split_column,
            strata,
            [params.val_fraction, params.test_fraction],
            params.seed,
            path,
            "core.tabular",
        )
        train = index["train"]
        if params.standardize:
            mean, std = x[train].mean(axis=0), x[train].std(axis=0)
            x = (x - mean) / np.where(std > 0, std, 1.0)
        self._splits, self._labels = {}, {}
        for name, chosen in index.items():
            self._splits[name] = TensorSplit(
                torch.from_numpy(x[chosen]), torch.from_numpy(y[chosen])
            )
            self._labels[name] = y[chosen] if task == "classification" else None
        self.split_names = tuple(index)
        if task == "classification":
            self._facts = classification_facts(
                y[train], len(classes), classes, None, None, num_features=len(features)
            )
        else:
            self._facts = DataFacts(
                task="regression",
                num_samples=len(train),
                num_features=len(features),
                extras={"feature_names": tuple(features)},
            )

    def facts(self) -> DataFacts:
        return self._facts


def _is_int(value: str) -> bool:
    return value.strip().lstrip("-").isdigit()


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
