"""PanDerm's dataset CSV (``image``, ``split``, ``label`` | ``binary_label``) as a dataset (§5).

One CSV lists every image with its split (``train``/``val``/``test``) and an integer label; the
fine-tuning code may read another image column (``image_key``) and binary tasks read
``binary_label``. A ``mask_key`` column makes it a segmentation set (ISIC 2018 Task 1 listed as
``image,mask,split``). Items are ``{"image": PIL RGB, "label", "index", "meta": {"filename"}}``
(plus ``"mask"``, a PIL ``L`` image); the transforms turn them into tensors.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset
from PIL import Image

from asklepios_panderm.params import DermCsvParams

__all__ = ["DermCsv", "DermCsvSplit"]

SPLITS = ("train", "val", "test")


class DermCsvSplit(torch.utils.data.Dataset):
    """The rows of one split: images opened on access (PIL, RGB)."""

    def __init__(
        self,
        paths: list[str],
        names: list[str],
        labels: np.ndarray,
        masks: list[str] | None,
        where: str,
    ) -> None:
        self.paths, self.names, self.labels, self.masks = paths, names, labels, masks
        self.where = where

    def __len__(self) -> int:
        return len(self.paths)

    def _open(self, path: str, mode: str, row: int) -> Image.Image:
        try:
            with Image.open(path) as image:
                return image.convert(mode)
        except OSError as err:
            raise ComponentError(
                f"{self.where}: row {row} ({self.names[row]}): cannot open {path}: {err}"
            ) from err

    def __getitem__(self, index: int) -> dict[str, Any]:
        item: dict[str, Any] = {
            "image": self._open(self.paths[index], "RGB", index),
            "label": int(self.labels[index]),
            "index": index,
            "meta": {"filename": self.names[index]},
        }
        if self.masks is not None:
            item["mask"] = self._open(self.masks[index], "L", index)
        return item


class DermCsv(Dataset):
    """Read a PanDerm dataset CSV: image, split, label (or binary_label), optional mask column.

    Paths are joined to ``root`` properly (``concat_root: true`` reproduces the repo's plain
    string concatenation). Splits keep the CSV's row order; the label-fraction rules of
    ``panderm.label_fraction`` and ``panderm.linear_probe`` shuffle from there as the repo does.
    """

    def __init__(self, params: DermCsvParams, ctx: BuildContext) -> None:
        path = Path(params.csv).expanduser()
        where = f"panderm.derm_csv ({path})"
        try:
            with path.open(newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                header = list(reader.fieldnames or [])
                rows = list(reader)
        except OSError as err:
            raise ComponentError(f"{where}: cannot read the CSV: {err}") from err
        label_key = "binary_label" if params.binary else params.label_key
        wanted = [params.image_key, params.split_key]
        if params.mask_key is None:
            wanted.append(label_key)
        else:
            wanted.append(params.mask_key)
        missing = [c for c in wanted if c not in header]
        if missing:
            raise ComponentError(
                f"{where}: missing column(s) {missing}; the header is {header}. Set image_key, "
                "label_key, split_key or mask_key, or binary: true for 'binary_label'"
            )
        root = Path(params.root).expanduser() if params.root else path.parent
        root_text = os.path.expanduser(params.root) if params.root else str(path.parent) + os.sep

        def join(name: str) -> str:
            return root_text + name if params.concat_root else str(root / name)

        by_split: dict[str, list[int]] = {s: [] for s in SPLITS}
        for i, row in enumerate(rows):
            split = row[params.split_key].strip()
            if split not in by_split:
                raise ComponentError(
                    f"{where}: row {i + 2} has split {split!r}; use one of {list(SPLITS)}"
                )
            by_split[split].append(i)
        if not by_split["train"]:
            raise ComponentError(f"{where}: no row has split 'train'")
        segmentation = params.mask_key is not None
        labels = np.zeros(len(rows), dtype=np.int64)
        if not segmentation or label_key in header:
            for i, row in enumerate(rows):
                try:
                    labels[i] = int(float(row[label_key]))
                except (ValueError, KeyError) as err:
                    raise ComponentError(
                        f"{where}: row {i + 2}: {label_key}={row.get(label_key)!r} is not an "
                        "integer class id (0..K-1)"
                    ) from err
        if (labels < 0).any():
            raise ComponentError(f"{where}: labels must be 0..K-1; found {int(labels.min())}")
        num_classes = params.num_classes or (2 if segmentation else int(labels.max()) + 1)
        if not segmentation and int(labels.max()) >= num_classes:
            raise ComponentError(
                f"{where}: label {int(labels.max())} >= num_classes {num_classes}; fix the CSV "
                "or num_classes"
            )
        self.split_names = tuple(s for s in SPLITS if by_split[s])
        self._splits: dict[str, DermCsvSplit] = {}
        self._labels: dict[str, np.ndarray] = {}
        for split in self.split_names:
            chosen = by_split[split]
            names = [rows[i][params.image_key] for i in chosen]
            masks = [join(rows[i][params.mask_key]) for i in chosen] if params.mask_key else None
            self._labels[split] = labels[chosen]
            self._splits[split] = DermCsvSplit(
                [join(n) for n in names], names, labels[chosen], masks, f"{where} [{split}]"
            )
        train = self._labels["train"]
        class_names = params.class_names
        if class_names is not None and len(class_names) != num_classes:
            raise ComponentError(
                f"{where}: {len(class_names)} class_names for {num_classes} classes"
            )
        self._facts = DataFacts(
            task="segmentation" if segmentation else "classification",
            num_samples=len(train),
            num_classes=num_classes,
            class_counts=None
            if segmentation
            else tuple(int(c) for c in np.bincount(train, minlength=num_classes)),
            class_names=tuple(class_names) if class_names else None,
            labels=None if segmentation else tuple(int(v) for v in train),
            in_channels=3,
        )

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name not in self._splits:
            raise ComponentError(
                f"panderm.derm_csv: no rows have split {name!r}; splits: {list(self._splits)}"
            )
        return self._splits[name]

    def facts(self) -> DataFacts:
        return self._facts

    def labels(self, name: str) -> np.ndarray | None:
        if self._facts.task == "segmentation":
            return None
        return self._labels.get(name)
