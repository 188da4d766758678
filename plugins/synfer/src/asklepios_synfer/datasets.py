"""FEText captions and AUs, digits as a bundled stand-in, generation requests (spec §2.2).

A FEText source folder holds the images and two files ([repro] format):

- ``captions.json``: a *list of single-key objects* ``[{"<image name>": "<caption>"}, ...]``;
- ``fau_labels.json``: an object ``{"<image name>": "<41 space-separated 0/1 values>"}``.

An image missing from ``fau_labels.json`` is skipped; an image without a caption gets ``""``; an
AU string of another length is an error naming the file and image. Samples are
``{"image": [3, H, W] in [0, 1], "text": caption, "meta": {"au": float [41], "name"}, "index"}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset
from asklepios_sdk.components import build_component
from asklepios_sdk.io import write_atomic

from asklepios_synfer.params import (
    DigitsFETextParams,
    FETextParams,
    GenerationRequestsParams,
)

__all__ = [
    "EMFACS_PROTOTYPES",
    "OPENGRAPHAU_ORDER",
    "DigitsFEText",
    "FEText",
    "GenerationRequests",
    "au_prototypes",
    "parse_au",
    "read_source",
    "write_fetext",
]

OPENGRAPHAU_ORDER = tuple(
    [
        "AU1",
        "AU2",
        "AU4",
        "AU5",
        "AU6",
        "AU7",
        "AU9",
        "AU10",
        "AU11",
        "AU12",
        "AU13",
        "AU14",
        "AU15",
        "AU16",
        "AU17",
        "AU18",
        "AU19",
        "AU20",
        "AU22",
        "AU23",
        "AU24",
        "AU25",
        "AU26",
        "AU27",
        "AU32",
        "AU38",
        "AU39",
        "AUL1",
        "AUR1",
        "AUL2",
        "AUR2",
        "AUL4",
        "AUR4",
        "AUL6",
        "AUR6",
        "AUL10",
        "AUR10",
        "AUL12",
        "AUR12",
        "AUL14",
        "AUR14",
    ]
)
"""The 41 OpenGraphAU outputs: 27 main AUs, then 14 left/right sub-AUs (reconstructed order)."""

EMFACS_PROTOTYPES = {
    "neutral": (),
    "happy": ("AU6", "AU12"),
    "sad": ("AU1", "AU4", "AU15"),
    "surprise": ("AU1", "AU2", "AU5", "AU26"),
    "fear": ("AU1", "AU2", "AU4", "AU5", "AU7", "AU20", "AU26"),
    "disgust": ("AU9", "AU15", "AU16"),
    "anger": ("AU4", "AU5", "AU7", "AU23"),
    "contempt": ("AUR12", "AUR14"),
}
"""EMFACS prototype AUs of the AffectNet-8 expressions [proposal: the paper gives none]."""


def parse_au(text: str, dim: int, threshold: float, where: str) -> torch.Tensor:
    """Return the binary AU vector of a space-separated string of ``dim`` values."""
    values = text.split()
    if len(values) != dim:
        raise ComponentError(f"{where}: AU string has {len(values)} values, expected {dim}")
    try:
        numbers = torch.tensor([float(v) for v in values])
    except ValueError as err:
        raise ComponentError(f"{where}: AU string is not numeric: {err}") from err
    return (numbers >= threshold).float()


def read_source(root: Path, dim: int, threshold: float) -> list[dict[str, Any]]:
    """Return ``[{path, name, caption, au}]`` for every labelled image of a FEText folder."""
    captions_file, labels_file = root / "captions.json", root / "fau_labels.json"
    for path in (captions_file, labels_file):
        if not path.is_file():
            raise ComponentError(f"synfer.fetext: {path} is missing; a FEText folder has both")
    raw = json.loads(captions_file.read_text())
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ComponentError(
            f"synfer.fetext: {captions_file} must be a list of single-key objects "
            '[{"<image>": "<caption>"}, ...]'
        )
    captions = {str(k): str(v) for entry in raw for k, v in entry.items()}
    labels = json.loads(labels_file.read_text())
    if not isinstance(labels, dict):
        raise ComponentError(f"synfer.fetext: {labels_file} must be an object {{image: AUs}}")
    names = sorted(
        {p.name for p in root.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")}
    )
    items = []
    for name in names:
        if name not in labels:
            continue
        where = f"synfer.fetext: {labels_file} [{name}]"
        au = parse_au(str(labels[name]), dim, threshold, where)
        items.append(
            {"path": root / name, "name": name, "caption": captions.get(name, ""), "au": au}
        )
    return items


def _load_image(path: Path, size: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as handle:
        image = handle.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BICUBIC)
        array = np.array(image)
    return torch.from_numpy(array).permute(2, 0, 1).float() / 255


class _FETextSplit(torch.utils.data.Dataset):
    """FEText items; the caption is dropped ('') with probability ``text_dropout``."""

    def __init__(self, items: list[dict[str, Any]], size: int, text_dropout: float) -> None:
        self.items, self.size, self.text_dropout = items, size, text_dropout

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        dropped = self.text_dropout > 0 and float(torch.rand(())) < self.text_dropout
        sample = {
            "image": _load_image(item["path"], self.size),
            "text": "" if dropped else item["caption"],
            "meta": {"au": item["au"].clone(), "name": item["name"]},
            "index": index,
        }
        if "label" in item:
            sample["label"] = int(item["label"])
        return sample


class FEText(Dataset):
    """Read FEText folders: images, captions.json (list of dicts), fau_labels.json (41 bits)."""

    split_names = ("train",)

    def __init__(self, params: FETextParams, ctx: BuildContext) -> None:
        self.params = params
        items = []
        for root in params.roots:
            items += read_source(Path(root).expanduser(), params.au_dim, params.au_threshold)
        if not items:
            raise ComponentError(
                f"synfer.fetext: no image of {list(params.roots)} has AU labels in fau_labels.json"
            )
        labels_files = [Path(r).expanduser() / "labels.json" for r in params.roots]
        known: dict[str, int] = {}
        for path in labels_files:
            if path.is_file():
                known.update({str(k): int(v) for k, v in json.loads(path.read_text()).items()})
        if known and all(item["name"] in known for item in items):
            for item in items:
                item["label"] = known[item["name"]]
        self.items = items
        self.train = _FETextSplit(items, params.image_size, params.text_dropout)

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.train

    def labels(self, name: str) -> np.ndarray | None:
        if all("label" in i for i in self.items):
            return np.asarray([i["label"] for i in self.items])
        return None

    def files(self, name: str) -> list[tuple[int, str]]:
        return [(i, str(item["path"])) for i, item in enumerate(self.items)]

    def facts(self) -> DataFacts:
        size = self.params.image_size
        return DataFacts(
            task="generation", num_samples=len(self.items), in_channels=3, image_size=(size, size)
        )


def _digits(params: DigitsFETextParams) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Return ``(images [N, 3, S, S], labels, au [N, dim])`` of the bundled digits."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    rng = np.random.default_rng(params.seed)
    chosen = []
    for digit in range(params.classes):
        where = np.flatnonzero(bunch.target == digit)
        chosen += rng.choice(where, size=min(params.per_class, len(where)), replace=False).tolist()
    chosen = sorted(chosen)
    images = torch.as_tensor(bunch.images[chosen], dtype=torch.float32)[:, None] / 16.0
    images = torch.nn.functional.interpolate(
        images, size=(params.image_size,) * 2, mode="bilinear", align_corners=False
    ).clamp(0, 1)
    labels = bunch.target[chosen].astype(np.int64)
    patterns = rng.random((params.classes, params.au_dim)) < 0.25  # one AU pattern per class
    flips = rng.random((len(chosen), params.au_dim)) < params.au_flip
    au = torch.as_tensor(patterns[labels] ^ flips, dtype=torch.float32)
    return images.repeat(1, 3, 1, 1), labels, au


DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _png_writer(picture: Any) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        picture.save(tmp, format="PNG")

    return write


def write_fetext(folder: str | Path, params: DigitsFETextParams | None = None) -> Path:
    """Write the bundled digits as a FEText source folder (PNGs, captions, AUs, labels)."""
    from PIL import Image

    params = params or DigitsFETextParams()
    images, labels, au = _digits(params)
    root = Path(folder)
    captions, fau, names = [], {}, {}
    for i in range(len(labels)):
        name = f"digit_{i:05d}.png"
        pixels = (images[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        write_atomic(root / name, write=_png_writer(Image.fromarray(pixels)))
        captions.append({name: f"a photo of the digit {DIGIT_NAMES[int(labels[i])]}"})
        fau[name] = " ".join(str(int(v)) for v in au[i].tolist())
        names[name] = int(labels[i])
    write_atomic(root / "captions.json", json=captions)
    write_atomic(root / "fau_labels.json", json=fau)
    write_atomic(root / "labels.json", json=names)
    return root


class DigitsFEText(Dataset):
    """Serve scikit-learn's digits as a FEText stand-in: captions, a 41-bit AU per class."""

    split_names = ("train",)

    def __init__(self, params: DigitsFETextParams, ctx: BuildContext) -> None:
        self.params = params
        images, self._labels, au = _digits(params)
        self.items = [
            {
                "image": images[i],
                "caption": f"a photo of the digit {DIGIT_NAMES[int(self._labels[i])]}",
                "au": au[i],
                "label": int(self._labels[i]),
            }
            for i in range(len(self._labels))
        ]
        self.train = _MemorySplit(self.items)

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.train

    def labels(self, name: str) -> np.ndarray:
        return self._labels

    def facts(self) -> DataFacts:
        size = self.params.image_size
        counts = np.bincount(self._labels, minlength=self.params.classes)
        return DataFacts(
            task="generation",
            num_samples=len(self._labels),
            num_classes=self.params.classes,
            class_counts=tuple(int(c) for c in counts),
            class_names=DIGIT_NAMES[: self.params.classes],
            in_channels=3,
            image_size=(size, size),
        )


class _MemorySplit(torch.utils.data.Dataset):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        return {
            "image": item["image"].clone(),
            "text": item["caption"],
            "label": item["label"],
            "meta": {"au": item["au"].clone()},
            "index": index,
        }


def au_prototypes(params: GenerationRequestsParams, layouts: Dataset | None = None) -> torch.Tensor:
    """Return one AU vector per class ``[K, au_dim]`` from ``params.au_source``."""
    names, dim = params.class_names, params.au_dim
    if params.au_source == "emfacs":
        unknown = [n for n in names if n not in EMFACS_PROTOTYPES]
        if unknown or dim != len(OPENGRAPHAU_ORDER):
            raise ComponentError(
                f"synfer.requests: au_source 'emfacs' knows the AffectNet-8 names on the 41 "
                f"OpenGraphAU AUs; got classes {unknown or names} with au_dim {dim}; use "
                "au_source 'table' or 'class_mean'"
            )
        table = torch.zeros(len(names), dim)
        for k, name in enumerate(names):
            for au in EMFACS_PROTOTYPES[name]:
                table[k, OPENGRAPHAU_ORDER.index(au)] = 1.0
        return table
    if params.au_source == "table":
        if params.au_table is None:
            raise ComponentError("synfer.requests: au_source 'table' needs au_table (a JSON file)")
        raw = json.loads(Path(params.au_table).read_text())
        missing = [n for n in names if n not in raw]
        if missing:
            raise ComponentError(f"synfer.requests: {params.au_table} has no AUs for {missing}")
        return torch.stack([parse_au(str(raw[n]), dim, 0.5, str(params.au_table)) for n in names])
    split = layouts.split("train") if layouts is not None else None
    labels = layouts.labels("train") if layouts is not None else None
    if split is None or labels is None:
        raise ComponentError(
            "synfer.requests: au_source 'class_mean' needs layout data with labels"
        )
    total, count = torch.zeros(len(names), dim), torch.zeros(len(names))
    for i, label in enumerate(labels.tolist()):
        if label < len(names):
            total[label] += split[i]["meta"]["au"]
            count[label] += 1
    return (total / count.clamp_min(1)[:, None] >= 0.5).float()


class _RequestSplit(torch.utils.data.Dataset):
    def __init__(self, parent: GenerationRequests) -> None:
        self.parent = parent

    def __len__(self) -> int:
        return self.parent.params.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        p = self.parent
        label = index % len(p.params.class_names)
        layout = p.layout_split[int(p.layout_index[index])]
        return {
            "image": layout["image"],
            "text": p.params.prompt.format(expression=p.params.class_names[label]),
            "label": label,
            "meta": {"au": p.prototypes[label].clone()},
            "index": index,
        }


class GenerationRequests(Dataset):
    """Make balanced generation requests: prompt, class AU vector, a random layout each."""

    split_names = ("train",)

    def __init__(self, params: GenerationRequestsParams, ctx: BuildContext) -> None:
        self.params = params
        spec = dict(params.layouts)
        kind = spec.pop("type", None)
        if not kind:
            raise ComponentError("synfer.requests: layouts needs a dataset 'type'")
        layouts = build_component("dataset", kind, spec, ctx, where="synfer.requests.layouts")
        self.layout_split = layouts.split("train")
        self.prototypes = au_prototypes(params, layouts)
        rng = np.random.default_rng(params.seed)
        self.layout_index = rng.integers(0, len(self.layout_split), size=params.count)
        self.requests = _RequestSplit(self)

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.requests

    def labels(self, name: str) -> np.ndarray:
        return np.arange(self.params.count) % len(self.params.class_names)

    def facts(self) -> DataFacts:
        return DataFacts(
            task="generation",
            num_samples=self.params.count,
            num_classes=len(self.params.class_names),
            class_names=tuple(self.params.class_names),
        )
