"""Generated datasets: a stage whose product is a dataset on disk, resumable item by item.

A model that *produces training data* (a diffusion model synthesising labelled images) is a
:class:`DatasetGenerator`: ``generate_items(batch, seeds) -> list[dict]``, one item per request,
batched. A stage with a ``generate:`` section runs it over a split of *requests* (the stage's
dataset: prompts, target labels, layout images...) instead of training:

- every request is one item, identified by its position ``index`` in the split;
- item ``index`` is generated with the seed ``seeds[i]`` the engine derives from the run's seed
  and ``index`` alone, so the result does not depend on batching, rank count or resumption;
- each item's image is written atomically to ``images/<index:08d>.png`` and then its record is
  appended (flushed and ``fsync``\\ ed per batch) to a per-rank journal: a killed generation
  resumes without generating a journaled item again;
- when every item is there, rank 0 writes ``items.jsonl`` (every record, in ``index`` order),
  ``index.csv`` (``path,label`` and the other scalar fields: ``core.csv`` reads it) and
  ``manifest.json`` (``complete: true``, the item count, the stage and the generator's
  :meth:`~DatasetGenerator.generation_metadata`).

The folder is ``<run>[/fold-k]/generated/<stage>``. Later stages of the same run find it through
``ctx.extras["generated"][<stage>]`` (:func:`generated_dir`); another config names the folder.
:class:`GeneratedSplit` reads it back as samples (``image`` float ``[C, H, W]`` in ``[0, 1]``,
``label``, ``index``, ``meta``).

An **item** is a dict with

- ``image``: ``[C, H, W]`` ``uint8`` tensor, ``C`` 1 or 3 (or ``None`` for an item without one);
- ``label`` (optional): int, the class the item was generated for;
- anything else: JSON values (numbers, strings, lists, dicts) kept in the record (a caption, an
  AU vector, a seed); ``index``, ``path`` and ``seed`` are set by the engine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from asklepios_sdk.context import BuildContext
from asklepios_sdk.errors import ComponentError

__all__ = [
    "GENERATED_EXTRA",
    "GENERATION_MODELS_EXTRA",
    "RESERVED_ITEM_KEYS",
    "DatasetGenerator",
    "GeneratedSplit",
    "GenerationPending",
    "check_item",
    "generated_dir",
    "item_path",
    "read_generated",
    "read_manifest",
]

GENERATED_EXTRA = "generated"
"""Key of ``BuildContext.extras``: stage name -> folder of the datasets generated so far."""

GENERATION_MODELS_EXTRA = "generation_models"
"""Key of ``BuildContext.extras`` while a config is checked before its run: generation stage ->
its ``model`` section (JSON), so a component can check a pending generation's configuration."""

RESERVED_ITEM_KEYS: frozenset[str] = frozenset({"index", "path", "seed"})
"""Record fields the engine sets itself; an item may not carry them."""


class GenerationPending(ComponentError):
    """The generated dataset a component reads does not exist yet: its stage has not run.

    Raised while a config is checked before its run (``asklepios validate --deep``, the checks
    of ``asklepios run``), where ``ctx.extras["generated"]`` names the generation stages of the
    config with the folder ``None``; the checks then skip what depends on it.
    """


def item_path(index: int) -> str:
    """Return the image path of item ``index``, relative to the generated folder."""
    return f"images/{int(index):08d}.png"


class DatasetGenerator:
    """A model that generates one dataset item per request (mix it into an nn.Module).

    Subclasses implement :meth:`generate_items` and may describe themselves in
    :meth:`generation_metadata` (written into ``manifest.json``, e.g. which classifier guided
    the generation, so an evaluator can refuse to score with the same one).
    """

    generates_items: bool = True

    def generate_items(  # pragma: no cover - abstract
        self, batch: Mapping[str, Any], seeds: Sequence[int]
    ) -> list[dict[str, Any]]:
        """Return one item per request of ``batch``, item ``i`` drawn from ``seeds[i]``.

        Called with gradients enabled (guidance may need them) and the model in eval mode; the
        batch is on the model's device.
        """
        raise ComponentError(f"{type(self).__name__} does not implement generate_items")

    def generation_metadata(self) -> dict[str, Any]:
        """Return JSON facts about the generator for ``manifest.json`` (default: none)."""
        return {}


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def check_item(item: Any, where: str) -> None:
    """Raise :class:`ComponentError` unless ``item`` follows the item contract."""
    if not isinstance(item, dict):
        raise ComponentError(f"{where}: an item is a dict, got {type(item).__name__}")
    reserved = sorted(RESERVED_ITEM_KEYS & set(item))
    if reserved:
        raise ComponentError(f"{where}: items may not set {reserved}; the engine sets them")
    image = item.get("image")
    if image is not None:
        if not isinstance(image, Tensor) or image.dtype != torch.uint8 or image.dim() != 3:
            shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ComponentError(
                f"{where}: 'image' must be a [C, H, W] uint8 tensor, got {shape}"
                + (f" {image.dtype}" if isinstance(image, Tensor) else "")
            )
        if image.shape[0] not in (1, 3):
            raise ComponentError(f"{where}: 'image' has {image.shape[0]} channels; use 1 or 3")
    label = item.get("label")
    if label is not None and (isinstance(label, bool) or not isinstance(label, int)):
        raise ComponentError(f"{where}: 'label' must be an int, got {label!r}")
    for key, value in item.items():
        if key != "image" and not _is_json(value):
            raise ComponentError(
                f"{where}: field {key!r} is not a JSON value ({type(value).__name__}); convert "
                "tensors with .tolist() and drop non-finite numbers"
            )


def generated_dir(
    ctx: BuildContext, *, stage: str | None = None, path: str | None = None, where: str = ""
) -> Path:
    """Return the folder of a generated dataset: an earlier stage's, or ``path``.

    Raises:
        ComponentError: neither or both given; the stage has not generated in this run (yet);
            no complete generated dataset at the folder.
    """
    if (stage is None) == (path is None):
        raise ComponentError(
            f"{where}: give exactly one of 'stage' (a generation stage of this config) and "
            "'path' (the folder of a generated dataset)"
        )
    if stage is not None:
        known = dict(ctx.extras.get(GENERATED_EXTRA) or {})
        if stage not in known:
            raise ComponentError(
                f"{where}: stage {stage!r} has not generated a dataset before stage "
                f"{ctx.stage!r} (generation stages so far: {sorted(known) or 'none'}); put the "
                "stage with 'generate:' first, or give 'path' to a generated folder"
            )
        if known[stage] is None:
            raise GenerationPending(
                f"{where}: stage {stage!r} generates this dataset when the run gets there"
            )
        folder = Path(known[stage])
    else:
        folder = Path(str(path)).expanduser()
    read_manifest(folder, where)
    return folder


def read_manifest(folder: str | Path, where: str = "") -> dict[str, Any]:
    """Return ``manifest.json`` of a complete generated dataset.

    Raises:
        ComponentError: no manifest (the generation did not finish), or it is not complete.
    """
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise ComponentError(
            f"{where}: {folder} holds no finished generated dataset (no manifest.json); resume "
            "the generating run to finish it"
        )
    manifest = dict(json.loads(path.read_text()))
    if not manifest.get("complete"):
        raise ComponentError(f"{where}: the generated dataset in {folder} is not complete")
    return manifest


def read_generated(folder: str | Path, where: str = "") -> list[dict[str, Any]]:
    """Return every record of a complete generated dataset, in ``index`` order."""
    manifest = read_manifest(folder, where)
    lines = (Path(folder) / "items.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    if len(records) != int(manifest["items"]):
        raise ComponentError(
            f"{where}: {folder}/items.jsonl has {len(records)} records, manifest.json says "
            f"{manifest['items']}"
        )
    return records


class GeneratedSplit(torch.utils.data.Dataset):
    """Generated items as samples: ``image`` float ``[C, H, W]`` in [0, 1], ``label``, ``meta``.

    Args:
        folder: the generated folder.
        records: the records to serve (default: all of them, in ``index`` order).
        labels: one label per record overriding the record's (e.g. calibrated labels).
        soft_labels: one probability vector per record, served as ``soft_label``.
    """

    def __init__(
        self,
        folder: str | Path,
        records: Sequence[Mapping[str, Any]] | None = None,
        labels: Sequence[int] | None = None,
        soft_labels: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.records = [
            dict(r) for r in (records if records is not None else read_generated(folder))
        ]
        self.labels = list(labels) if labels is not None else None
        self.soft_labels = [list(s) for s in soft_labels] if soft_labels is not None else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, position: int) -> dict[str, Any]:
        import numpy as np
        from PIL import Image

        record = self.records[position]
        with Image.open(self.folder / record["path"]) as handle:
            array = np.array(handle)
        array = array[:, :, None] if array.ndim == 2 else array
        sample: dict[str, Any] = {
            "image": torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255,
            "index": int(record["index"]),
            "meta": _collatable_meta(record),
        }
        label = self.labels[position] if self.labels is not None else record.get("label")
        if label is not None:
            sample["label"] = int(label)
        if self.soft_labels is not None:
            sample["soft_label"] = torch.tensor(self.soft_labels[position], dtype=torch.float32)
        return sample


def _collatable_meta(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return a record's fields that torch's default collate batches: scalars, number lists."""
    meta: dict[str, Any] = {}
    for key, value in record.items():
        if key in ("path", "label", "index"):
            continue
        if isinstance(value, bool | int | float | str):
            meta[key] = value
        elif (
            isinstance(value, list)
            and value
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            meta[key] = torch.tensor(value, dtype=torch.float32)
    return meta
