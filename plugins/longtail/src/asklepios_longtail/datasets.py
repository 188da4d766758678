"""Long-tailed datasets: MONICA's geometric split builder, split lists, long-tailed digits.

``long_tail_profile`` reproduces MONICA's per-class training counts (its ``process_*.ipynb``
notebooks); ``longtail.split_list`` reads MONICA's published split lists from local folders;
``longtail.digits_lt`` is the spec's long-tailed scikit-learn digits benchmark (§8.5).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset, DatasetWrapper

from asklepios_longtail.params import DigitsLTParams, LongTailedParams, SplitListParams

__all__ = [
    "DigitsLT",
    "LongTailed",
    "SplitList",
    "build_long_tailed_split",
    "digits_counts",
    "long_tail_profile",
    "read_label_map",
    "reindex_by_frequency",
]


def long_tail_profile(
    num_classes: int,
    imbalance_ratio: float,
    n_max: int,
    rounding: Literal["round", "ceil", "floor"] = "round",
    natural: Sequence[int] | np.ndarray | None = None,
) -> list[int]:
    """Return MONICA's geometric ("Pareto") per-class training counts.

    n_0 = n_max and n_i = rounding(n_max / f^i) with f = r^{1/(C−1)}; ``round`` is Python's
    round-half-even (Kvasir, NCT), ``ceil`` reproduces ISIC's 51 and 11 tails (floating-point
    error in n_max / f^i). With ``natural`` counts each class is capped, min(natural_i, n_i)
    (MedMNIST).
    """
    if num_classes < 1 or imbalance_ratio < 1 or n_max < 1:
        raise ComponentError(
            f"long-tailed profile needs C >= 1, ratio >= 1 and n_max >= 1, got C={num_classes}, "
            f"ratio={imbalance_ratio}, n_max={n_max}"
        )
    ops: dict[str, Callable[[float], int]] = {
        "round": round,
        "ceil": math.ceil,
        "floor": math.floor,
    }
    factor = imbalance_ratio ** (1 / (num_classes - 1)) if num_classes > 1 else 1.0
    counts = [int(n_max)] + [int(ops[rounding](n_max / factor**i)) for i in range(1, num_classes)]
    if natural is not None:
        if len(natural) != num_classes:
            raise ComponentError(
                f"natural counts have {len(natural)} classes, the profile {num_classes}"
            )
        counts = [min(int(a), b) for a, b in zip(natural, counts, strict=True)]
    return counts


def reindex_by_frequency(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relabel classes so that class 0 is the most frequent (ties keep the old id order).

    Returns the new labels and ``order`` with ``order[new_id] = old_id``.
    """
    counts = np.bincount(labels)
    order = np.argsort(-counts, kind="stable")
    mapping = np.empty_like(order)
    mapping[order] = np.arange(len(order))
    return mapping[labels], order


def build_long_tailed_split(
    labels: Sequence[int] | np.ndarray,
    imbalance_ratio: float,
    n_max: int | None = None,
    rounding: Literal["round", "ceil", "floor"] = "round",
    held_out_per_class: Sequence[int] = (),
    seed: int = 1,
) -> dict[str, np.ndarray]:
    """Split a labelled dataset into balanced held-out parts and a long-tailed training part.

    Classes must already be ordered by frequency (see :func:`reindex_by_frequency`). Per class,
    indices are shuffled with ``seed``; the first ``held_out_per_class[k]`` go to held-out part
    ``k`` (e.g. val, test: balanced, drawn from images not used for training), and the next
    min(remaining, target) to training, target from :func:`long_tail_profile`.

    Returns:
        ``{"train": idx, "held_0": idx, "held_1": idx, ...}`` with sorted indices.
    """
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(labels.max()) + 1
    rng = np.random.RandomState(seed)
    members = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    held = int(sum(held_out_per_class))
    available = [max(len(m) - held, 0) for m in members]
    top = n_max if n_max is not None else available[0]
    targets = long_tail_profile(num_classes, imbalance_ratio, top, rounding, available)
    parts: dict[str, list[np.ndarray]] = {"train": []}
    for k in range(len(held_out_per_class)):
        parts[f"held_{k}"] = []
    for c, idx in enumerate(members):
        start = 0
        for k, size in enumerate(held_out_per_class):
            parts[f"held_{k}"].append(idx[start : start + size])
            start += size
        parts["train"].append(idx[start : start + targets[c]])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


class _TensorSplit(torch.utils.data.Dataset):
    """Samples held in memory: ``{"image": tensor, "label": int tensor}``."""

    def __init__(self, images: torch.Tensor, labels: np.ndarray) -> None:
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "label": self.labels[index]}


def _facts(
    train_labels: np.ndarray,
    num_classes: int,
    names: Sequence[str] | None,
    **shape: Any,
) -> DataFacts:
    counts = np.bincount(train_labels, minlength=num_classes)
    return DataFacts(
        task="classification",
        num_samples=len(train_labels),
        num_classes=num_classes,
        class_counts=tuple(int(c) for c in counts),
        class_names=tuple(names) if names is not None else None,
        labels=tuple(int(v) for v in train_labels),
        **shape,
    )


def digits_counts(n_max: int = 120, imbalance_ratio: float = 100.0) -> list[int]:
    """Return the digits benchmark's training counts round(n_max · r^{−c/9})."""
    return [round(n_max * imbalance_ratio ** (-c / 9)) for c in range(10)]


class DigitsLT(Dataset):
    """Load long-tailed scikit-learn digits: n_c = round(120·100^{−c/9}), balanced test (§8.5).

    Per class, images are shuffled with ``RandomState(seed)``; the first ``test_per_class`` form
    the test split, the next ``val_per_class`` the validation split, the next n_c training.
    Features are pixel values / 16.
    """

    def __init__(self, params: DigitsLTParams, ctx: BuildContext | None = None) -> None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        data = np.asarray(bunch.data, dtype=np.float32) / 16.0
        labels = np.asarray(bunch.target, dtype=np.int64)
        rng = np.random.RandomState(params.seed)
        sizes = digits_counts(params.n_max, params.imbalance_ratio)
        index: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for c in range(10):
            idx = rng.permutation(np.flatnonzero(labels == c))
            held = params.test_per_class + params.val_per_class
            if held + sizes[c] > len(idx):
                raise ComponentError(
                    f"longtail.digits_lt: class {c} has {len(idx)} images, fewer than "
                    f"test {params.test_per_class} + val {params.val_per_class} + train "
                    f"{sizes[c]}; lower n_max or the held-out sizes"
                )
            index["test"].append(idx[: params.test_per_class])
            index["val"].append(idx[params.test_per_class : held])
            index["train"].append(idx[held : held + sizes[c]])
        self.split_names = ("train", "val", "test") if params.val_per_class else ("train", "test")
        self._labels: dict[str, np.ndarray] = {}
        self._splits: dict[str, _TensorSplit] = {}
        for name in self.split_names:
            chosen = np.concatenate(index[name])
            values = torch.as_tensor(data[chosen])
            if params.as_image:
                values = values.reshape(-1, 1, 8, 8)
            self._labels[name] = labels[chosen]
            self._splits[name] = _TensorSplit(values, labels[chosen])
        shape: dict[str, Any] = (
            {"in_channels": 1, "image_size": (8, 8)} if params.as_image else {"num_features": 64}
        )
        self._facts = _facts(self._labels["train"], 10, [str(d) for d in range(10)], **shape)

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name not in self._splits:
            raise ComponentError(f"longtail.digits_lt has splits {self.split_names}, not {name!r}")
        return self._splits[name]

    def facts(self) -> DataFacts:
        return self._facts

    def labels(self, name: str) -> np.ndarray | None:
        return self._labels.get(name)


def read_label_map(path: str | Path, trust_pickle: bool = False) -> dict[str, int]:
    """Read a label map ``path -> label`` from a CSV (``path,label``) or MONICA's ``dic.npy``.

    ``dic.npy`` is a pickled dict, and unpickling runs code: it is read only with
    ``trust_pickle=True``, for a file you trust (convert it once to CSV with
    ``python -m asklepios_longtail.split_list_convert``).
    """
    path = Path(path)
    if not path.is_file():
        raise ComponentError(f"label map {path} does not exist")
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if rows and rows[0] and rows[0][0] == "path":
            rows = rows[1:]
        try:
            return {row[0]: int(row[1]) for row in rows if row}
        except (IndexError, ValueError) as err:
            raise ComponentError(f"label map {path}: rows must be 'path,label' ({err})") from err
    if not trust_pickle:
        raise ComponentError(
            f"label map {path} is a pickle (MONICA's dic.npy), and loading a pickle can run "
            "arbitrary code; convert it once with `python -m asklepios_longtail."
            f"split_list_convert {path} labels.csv --trust-pickle` and point label_map at the CSV, "
            "or set trust_pickle: true if you trust the file"
        )
    loaded = np.load(path, allow_pickle=True)
    mapping = loaded.item() if loaded.shape == () else dict(loaded)
    return {str(k): int(v) for k, v in mapping.items()}


class _FileSplit(torch.utils.data.Dataset):
    """Images read from disk on access, resized to a fixed size."""

    def __init__(self, paths: list[str], labels: np.ndarray, size: int, mode: str) -> None:
        self.paths = paths
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.size = size
        self.mode = mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from PIL import Image

        with Image.open(self.paths[index]) as img:
            img = img.convert(self.mode).resize((self.size, self.size), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.float32) / 255.0
        image = torch.from_numpy(array.reshape(self.size, self.size, -1)).permute(2, 0, 1)
        return {"image": image.contiguous(), "label": self.labels[index]}


class SplitList(Dataset):
    """Read MONICA-style split lists (arrays of relative image paths) plus a label map.

    Labels are used as stored (MONICA's maps already put the most frequent class at id 0).
    References: MONICA ``dataset/dataloader.py:customData``, ``numpy/<dataset>/``.
    """

    def __init__(self, params: SplitListParams, ctx: BuildContext | None = None) -> None:
        folder = Path(params.lists)
        mapping = read_label_map(folder / params.label_map, params.trust_pickle)
        entries = {"train": params.train, "val": params.val, "test": params.test}
        self.split_names = tuple(name for name, file in entries.items() if file)
        self._labels: dict[str, np.ndarray] = {}
        self._paths: dict[str, list[str]] = {}
        for name in self.split_names:
            list_path = folder / str(entries[name])
            if not list_path.is_file():
                raise ComponentError(f"longtail.split_list: {name} list {list_path} not found")
            items = [str(v) for v in np.load(list_path, allow_pickle=False).tolist()]
            missing = [item for item in items if item not in mapping]
            if missing:
                raise ComponentError(
                    f"longtail.split_list: {len(missing)} entries of {list_path} have no label "
                    f"in {params.label_map} (first: {missing[0]!r})"
                )
            self._labels[name] = np.asarray([mapping[item] for item in items], dtype=np.int64)
            self._paths[name] = [str(Path(params.root) / item) for item in items]
        if "train" not in self._labels:
            raise ComponentError("longtail.split_list needs a training list")
        num_classes = params.num_classes or int(max(v.max() for v in self._labels.values())) + 1
        self.params = params
        channels = 3 if params.mode == "RGB" else 1
        self._facts = _facts(
            self._labels["train"],
            num_classes,
            None,
            in_channels=channels,
            image_size=(params.image_size, params.image_size),
        )

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name not in self._paths:
            raise ComponentError(f"longtail.split_list has splits {self.split_names}, not {name!r}")
        return _FileSplit(
            self._paths[name], self._labels[name], self.params.image_size, self.params.mode
        )

    def facts(self) -> DataFacts:
        return self._facts

    def labels(self, name: str) -> np.ndarray | None:
        return self._labels.get(name)


class _Relabelled(torch.utils.data.Dataset):
    """A view of ``inner`` restricted to ``indices`` with labels mapped through ``mapping``."""

    def __init__(self, inner: Any, indices: np.ndarray | None, mapping: np.ndarray) -> None:
        self.inner = inner
        self.indices = indices
        self.mapping = torch.as_tensor(mapping, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.inner) if self.indices is None else len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        source = index if self.indices is None else int(self.indices[index])
        sample = dict(self.inner[source])
        sample["label"] = self.mapping[int(sample["label"])]
        return sample


class LongTailed(DatasetWrapper):
    """Subsample the training split to MONICA's geometric long-tailed profile, capped at n_c.

    n_i = min(natural_i, rounding(n_max / f^i)), f = r^{1/(C−1)}, with classes ranked by
    frequency (and relabelled so, by default); validation and test splits keep every sample
    (relabelled). Reproduces MONICA's MedMNIST training counts, e.g. DermaMNIST 4693, 779, 769,
    359, 218, 99, 47. References: MONICA ``utils/process_medmnist.ipynb``.
    """

    def __init__(self, params: LongTailedParams, ctx: BuildContext | None = None) -> None:
        self.params = params

    def wrap(self, inner: Dataset) -> Dataset:
        super().wrap(inner)
        labels = inner.labels("train")
        if labels is None:
            raise ComponentError(
                "longtail.long_tailed needs the inner dataset's training labels "
                "(Dataset.labels('train') returned None)"
            )
        labels = np.asarray(labels, dtype=np.int64)
        facts = inner.facts()
        num_classes = int(facts.num_classes or labels.max() + 1)
        counts = np.bincount(labels, minlength=num_classes)
        if self.params.reindex_by_frequency:
            order = np.argsort(-counts, kind="stable")
        else:
            order = np.arange(num_classes)
        mapping = np.empty(num_classes, dtype=np.int64)
        mapping[order] = np.arange(num_classes)
        ranked = mapping[labels]
        natural = counts[order]
        top = self.params.n_max or int(natural[0])
        targets = long_tail_profile(
            num_classes, self.params.imbalance_ratio, top, self.params.rounding, natural
        )
        if not self.params.reindex_by_frequency and np.any(np.diff(natural) > 0):
            raise ComponentError(
                "longtail.long_tailed: classes are not ordered by frequency; keep "
                "reindex_by_frequency: true or relabel the dataset"
            )
        rng = np.random.RandomState(self.params.seed)
        keep = [
            rng.permutation(np.flatnonzero(ranked == c))[: targets[c]] for c in range(num_classes)
        ]
        self.indices = np.sort(np.concatenate(keep))
        self.mapping = mapping
        self._labels = {"train": ranked[self.indices]}
        names = facts.class_names
        self._facts = facts.replace(
            num_samples=len(self.indices),
            num_classes=num_classes,
            class_counts=tuple(
                int(c) for c in np.bincount(self._labels["train"], minlength=num_classes)
            ),
            class_names=tuple(names[i] for i in order) if names else None,
            labels=tuple(int(v) for v in self._labels["train"]),
        )
        return self

    def split(self, name: str) -> torch.utils.data.Dataset:
        indices = self.indices if name == "train" else None
        return _Relabelled(self.inner.split(name), indices, self.mapping)

    def facts(self) -> DataFacts:
        return self._facts

    def labels(self, name: str) -> np.ndarray | None:
        if name == "train":
            return self._labels["train"]
        inner = self.inner.labels(name)
        return None if inner is None else self.mapping[np.asarray(inner, dtype=np.int64)]
