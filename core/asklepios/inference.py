"""Inference with a finished run: rebuild its model, load a checkpoint, predict on new data.

:func:`load_run_model` rebuilds the model of a run's stage (the last by default) from its resolved
config, exactly as the run built it, and loads the stage's checkpoint; a stage trained for 0
epochs (a test-only stage) tested the checkpoint it was initialised from, and so does this.
:func:`predict` applies the run's eval transforms to a dataset config, a CSV manifest, a folder
of images, tensors or a torch dataset and returns one row per item: the id, the predicted label
and the class probabilities (or the model's raw outputs for other tasks). Under ``torchrun``
each rank predicts every k-th item and rank 0 gathers the rows in order.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from asklepios_sdk import AsklepiosError, SampleTransform
from asklepios_sdk.io import write_atomic
from torch import nn

from asklepios.build import Built, TransformedSplit, build_experiment
from asklepios.builtins._data import IMAGE_SUFFIXES, load_image
from asklepios.config import ComponentSpec, ExperimentConfig, StageConfig, stage_configs
from asklepios.engine.checkpoint import load_checkpoint
from asklepios.engine.loop import move_batch
from asklepios.sampling import EvalShardSampler

if TYPE_CHECKING:
    from asklepios.plugins import PluginHost

__all__ = ["InferenceError", "LoadedModel", "Predictions", "load_run_model", "predict"]

Data = Any
"""What :func:`predict` accepts: see its docstring."""


class InferenceError(AsklepiosError):
    """A run's model cannot be rebuilt or loaded, or the data to predict on cannot be read."""


@dataclass
class LoadedModel:
    """A run's model with its weights, in eval mode, and what it was built with.

    Attributes:
        model: the model (backbone wrapped in its adapters), on ``device``, in eval mode.
        built: every component of the stage (dataset, eval splits, transforms, facts).
        stage: the stage whose model this is.
        checkpoint: the checkpoint file loaded.
        eval_transforms: the stage's per-sample eval transforms, in order.
        device: where the model is.
    """

    model: nn.Module
    built: Built
    stage: str
    checkpoint: Path
    eval_transforms: list[SampleTransform]
    device: torch.device

    @property
    def class_names(self) -> list[str] | None:
        """Return the training split's class names, if the dataset has them."""
        names = self.built.ctx.data.class_names
        return [str(n) for n in names] if names else None

    @property
    def task(self) -> str:
        """Return the dataset's task (``classification``, ``multilabel``, ...)."""
        return self.built.ctx.data.task


def _stage_entry(
    config: ExperimentConfig, stage: str | None
) -> tuple[int, StageConfig | None, ExperimentConfig, list[tuple[StageConfig | None, Any]]]:
    stages = stage_configs(config)
    names = [s.name if s is not None else "main" for s, _ in stages]
    if stage is None:
        index = len(stages) - 1
    elif stage in names:
        index = names.index(stage)
    else:
        raise InferenceError(f"the run has no stage {stage!r}; its stages: {', '.join(names)}")
    return index, stages[index][0], stages[index][1], stages


def _checkpoint_file(
    fold_dir: Path,
    stages: list[tuple[StageConfig | None, ExperimentConfig]],
    index: int,
    checkpoint: str,
    summary: Mapping[str, Any],
) -> Path:
    """Return the checkpoint stage ``index`` was tested with, following 0-epoch stages back."""
    stage, effective = stages[index]
    name = stage.name if stage is not None else "main"
    folder = fold_dir / "checkpoints" / name
    path = Path(checkpoint)
    if path.suffix == ".pt" and path.is_file():
        return path
    if (folder / f"{checkpoint}.pt").is_file():
        return folder / f"{checkpoint}.pt"
    selected = (summary.get("stages") or {}).get(name, {}).get("selected_checkpoint")
    if checkpoint == "best" and selected == "last" and (folder / "last.pt").is_file():
        return folder / "last.pt"  # the stage never validated: its last checkpoint was tested
    if effective.train.epochs == 0 and stage is not None and stage.init_from is not None:
        if stage.replace_head:
            raise InferenceError(
                f"stage {name} trained 0 epochs with replace_head: its head was never trained "
                "and has no checkpoint; pick another stage (stage=...)"
            )
        names = [s.name if s is not None else "main" for s, _ in stages]
        source = names.index(stage.init_from.stage)
        return _checkpoint_file(fold_dir, stages, source, stage.init_from.checkpoint, summary)
    raise InferenceError(
        f"no checkpoint '{checkpoint}' for stage {name} under {folder}; the run may not have "
        "finished (resume it with `asklepios run --resume RUN_DIR`) or use checkpoint='last'"
    )


def _load_state(model: nn.Module, built: Built, path: Path, device: torch.device) -> None:
    """Load a checkpoint's whole model, else its backbone (as a stage's ``init_from`` does)."""
    state = load_checkpoint(path, map_location=device)
    try:
        if set(state["model"]) == set(model.state_dict()):
            model.load_state_dict(state["model"])
        else:
            built.backbone.load_state_dict(state["backbone"])
    except (KeyError, RuntimeError) as err:
        raise InferenceError(
            f"checkpoint {path} does not fit the model the run's config builds ({err}); was the "
            "config or a plugin changed since? `asklepios record check RUN_DIR` says what"
        ) from err


def load_run_model(
    run_dir: Path,
    config: ExperimentConfig,
    summary: Mapping[str, Any],
    host: PluginHost,
    *,
    checkpoint: str = "best",
    stage: str | None = None,
    fold: int | None = None,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Rebuild the model of ``stage`` (default: the last) and load its checkpoint.

    Args:
        run_dir: the run directory.
        config: its resolved config.
        summary: its ``summary.json`` (which checkpoint each stage tested).
        host: the plugin host whose registry builds the components.
        checkpoint: ``"best"``, ``"last"`` or a ``.pt`` file. ``"best"`` of a stage that never
            validated is its last checkpoint, the one the run tested.
        stage: a stage name; default the last stage.
        fold: the fold of a cross-validated run (required there).
        device: where to put the model.
    """
    index, stage_config, effective, stages = _stage_entry(config, stage)
    name = stage_config.name if stage_config is not None else "main"
    k = config.train.folds or len(summary.get("folds") or []) or None
    if k and fold is None:
        raise InferenceError(f"the run has {k} folds; pick one with fold=0..{k - 1} (--fold)")
    fold_dir = run_dir / f"fold-{fold}" if fold is not None else run_dir
    path = _checkpoint_file(fold_dir, stages, index, checkpoint, summary)
    dev = torch.device(device)
    built = build_experiment(
        effective,
        host.registry,
        device=str(dev),
        stage=name,
        fold=(fold, k) if fold is not None and k else None,
    )
    model = built.model.to(dev)
    _load_state(model, built, path, dev)
    model.eval()
    split = next(iter(built.eval_splits.values()), None)
    transforms = list(split.transforms) if isinstance(split, TransformedSplit) else []
    return LoadedModel(model, built, name, path, transforms, dev)


# -- data -----------------------------------------------------------------------------------------


class _Items(torch.utils.data.Dataset):
    """Samples from a source, passed through the eval transforms, each with an id."""

    def __init__(
        self, source: Any, ids: Sequence[str], transforms: Sequence[SampleTransform]
    ) -> None:
        self.source = source
        self.ids = list(ids)
        self.transforms = list(transforms)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.source[index]
        if isinstance(sample, torch.Tensor):
            sample = {"image": sample}
        sample = dict(sample)
        for transform in self.transforms:
            sample = transform(sample)
        return sample


class _Files(torch.utils.data.Dataset):
    """Image files read as the run's dataset reads them (colour mode, size)."""

    def __init__(self, paths: Sequence[str], mode: str, size: tuple[int, int] | None) -> None:
        self.paths, self.mode, self.size = list(paths), mode, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": load_image(self.paths[index], self.mode, self.size)}


def _read_mode(loaded: LoadedModel) -> tuple[str, tuple[int, int] | None]:
    """Return the colour mode and size the run's dataset reads image files with."""
    params = loaded.built.config.data.dataset.params
    channels = loaded.built.ctx.data.in_channels
    mode = str(params.get("mode") or ("L" if channels == 1 else "RGB"))
    size = params.get("image_size")
    if isinstance(size, int):
        return mode, (size, size)
    if isinstance(size, list | tuple) and len(size) == 2:
        return mode, (int(size[0]), int(size[1]))
    return mode, None


def _from_csv(loaded: LoadedModel, path: Path, path_column: str) -> tuple[_Items, list[Any]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    if path_column not in header:
        raise InferenceError(
            f"{path} has no column {path_column!r} (it has {header}); name the image column "
            "with --path-column"
        )
    if not rows:
        raise InferenceError(f"{path} lists no images")
    paths = [row[path_column] for row in rows]
    files = [str(p if Path(p).is_absolute() else path.parent / p) for p in paths]
    labels = [row.get("label") for row in rows] if "label" in header else []
    mode, size = _read_mode(loaded)
    return _Items(_Files(files, mode, size), paths, loaded.eval_transforms), labels


def _from_folder(loaded: LoadedModel, folder: Path) -> _Items:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InferenceError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    ids = [p.relative_to(folder).as_posix() for p in files]
    mode, size = _read_mode(loaded)
    return _Items(_Files([str(p) for p in files], mode, size), ids, loaded.eval_transforms)


def _dataset_spec(path: Path) -> tuple[ComponentSpec, list[ComponentSpec]]:
    """Read a dataset config: ``{type: ...}``, ``{dataset: ..., wrappers: [...]}`` or ``data:``."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InferenceError(f"{path} is not valid YAML/JSON: {err}") from err
    if isinstance(raw, Mapping) and isinstance(raw.get("data"), Mapping):
        raw = raw["data"]
    if isinstance(raw, Mapping) and "type" in raw:
        raw = {"dataset": raw}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("dataset"), Mapping):
        raise InferenceError(
            f"{path}: expected a dataset component ({{type: core.csv, path: ...}}), a mapping "
            "with 'dataset' (and 'wrappers'), or a config with a 'data' section"
        )
    wrappers = raw.get("wrappers") or []
    return ComponentSpec(**raw["dataset"]), [ComponentSpec(**w) for w in wrappers]


def _from_dataset_config(loaded: LoadedModel, path: Path, split: str, host: PluginHost) -> _Items:
    """Build the dataset a config file describes (and its wrappers); take ``split``."""
    from asklepios_sdk import DatasetWrapper

    dataset_spec, wrappers = _dataset_spec(path)
    ctx = loaded.built.ctx
    registry = host.registry
    where = f"{path}: dataset"
    dataset = registry.get("dataset", dataset_spec.type).build(
        dataset_spec.params, ctx, where=where
    )
    for i, spec in enumerate(wrappers):
        wrapper = registry.get("dataset", spec.type).build(spec.params, ctx, where=f"{path}: {i}")
        if not isinstance(wrapper, DatasetWrapper):
            raise InferenceError(f"{path}: wrappers[{i}] ({spec.type}) is not a dataset wrapper")
        dataset = wrapper.wrap(dataset)
    names = list(getattr(dataset, "split_names", ("train", "val", "test")))
    if split not in names:
        raise InferenceError(f"{path}: the dataset has no {split!r} split ({names}); use --split")
    source = dataset.split(split)
    ids = [str(i) for i in range(len(cast(Sized, source)))]
    return _Items(source, ids, loaded.eval_transforms)


def _own_split(loaded: LoadedModel, split: str) -> tuple[_Items, dict[str, list[Any]]]:
    """Return the run's own ``split``: ids are the files the dataset lists for its rows (else
    row numbers), and a ``label`` column holds the true label when the dataset knows it."""
    if split not in loaded.built.eval_splits:
        names = sorted(loaded.built.eval_splits)
        raise InferenceError(f"the run's dataset has no {split!r} split; it has {names}")
    source = loaded.built.eval_splits[split]  # transforms applied already
    count = len(cast(Sized, source))
    dataset = loaded.built.dataset
    ids = [str(i) for i in range(count)]
    listed = {int(entry[0]): str(entry[1]) for entry in dataset.files(split)}
    if len(listed) == count and set(listed) == set(range(count)):
        ids = [listed[i] for i in range(count)]
    extra: dict[str, list[Any]] = {}
    truth = dataset.labels(split)
    if truth is not None and np.ndim(truth) == 1 and len(truth) == count:
        classes = loaded.class_names
        extra["label"] = [classes[int(t)] if classes else str(int(t)) for t in truth]
    return _Items(source, ids, []), extra


def as_items(
    loaded: LoadedModel,
    data: Data,
    split: str,
    host: PluginHost | None,
    path_column: str = "path",
) -> tuple[_Items, dict[str, list[Any]]]:
    """Return ``data`` as items with ids and eval transforms, and extra columns to keep."""
    if data is None:
        return _own_split(loaded, split)
    if isinstance(data, torch.Tensor):
        images = data.unsqueeze(0) if data.dim() == 3 else data
        return _Items(images, [str(i) for i in range(len(images))], loaded.eval_transforms), {}
    if isinstance(data, torch.utils.data.Dataset):
        n = len(cast(Sized, data))
        return _Items(data, [str(i) for i in range(n)], loaded.eval_transforms), {}
    path = Path(data)
    if path.is_dir():
        return _from_folder(loaded, path), {}
    if not path.is_file():
        raise InferenceError(f"{path} is neither a folder of images nor a file")
    if path.suffix.lower() == ".csv":
        items, labels = _from_csv(loaded, path, path_column)
        return items, ({"label": labels} if labels else {})
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        if host is None:
            raise InferenceError("predicting on a dataset config needs the plugin host")
        return _from_dataset_config(loaded, path, split, host), {}
    raise InferenceError(
        f"{path}: give a dataset config (.yaml/.json), a CSV of image paths, or a folder"
    )


# -- predictions ----------------------------------------------------------------------------------


@dataclass
class Predictions:
    """One row per item: id, predicted label and probabilities (or the raw outputs).

    Attributes:
        ids: the item ids (index, relative path, or the CSV's path column).
        outputs: the model's ``logits`` per item (``N x K``).
        task: the dataset's task; decides how outputs become predictions.
        class_names: names of the classes, when the dataset has them.
        extra: other columns to write (a CSV's ``label`` column).
    """

    ids: list[str]
    outputs: np.ndarray
    task: str = "classification"
    class_names: list[str] | None = None
    extra: dict[str, list[Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def probabilities(self) -> np.ndarray | None:
        """Return softmax (classification) or sigmoid (multilabel) probabilities, else None."""
        logits = torch.as_tensor(self.outputs, dtype=torch.float64)
        if self.task == "classification":
            return torch.softmax(logits, dim=1).numpy()
        if self.task == "multilabel":
            return torch.sigmoid(logits).numpy()
        return None

    @property
    def labels(self) -> list[str] | None:
        """Return the predicted label of each item (``;``-joined for multilabel), or None."""
        probs = self.probabilities
        if probs is None:
            return None
        names = self.class_names or [str(i) for i in range(probs.shape[1])]
        if self.task == "multilabel":
            return [
                ";".join(n for n, p in zip(names, row, strict=True) if p >= 0.5) for row in probs
            ]
        return [names[i] for i in probs.argmax(axis=1)]

    def columns(self) -> dict[str, list[Any]]:
        """Return the table as columns: ``id``, extras, ``prediction``, ``prob_<class>``..."""
        table: dict[str, list[Any]] = {"id": list(self.ids), **self.extra}
        probs, labels = self.probabilities, self.labels
        if probs is not None and labels is not None:
            table["prediction"] = labels
            names = self.class_names or [str(i) for i in range(probs.shape[1])]
            for j, name in enumerate(names):
                table[f"prob_{name}"] = [float(v) for v in probs[:, j]]
        else:
            width = self.outputs.shape[1] if self.outputs.ndim == 2 else 1
            flat = self.outputs.reshape(len(self.ids), width)
            for j in range(width):
                table["output" if width == 1 else f"output_{j}"] = [float(v) for v in flat[:, j]]
        return table

    def to_dataframe(self) -> Any:
        """Return the table as a pandas DataFrame (``pip install 'asklepios[pandas]'``)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise InferenceError(
                "to_dataframe needs pandas: pip install 'asklepios[pandas]'"
            ) from err
        return pd.DataFrame(self.columns())

    def write_csv(self, path: str | Path) -> Path:
        """Write the table to ``path`` (atomically) and return it."""
        table = self.columns()
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(list(table))
        writer.writerows(zip(*table.values(), strict=True))
        return write_atomic(Path(path), buffer.getvalue())


def _world() -> tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@torch.inference_mode()
def predict(
    loaded: LoadedModel,
    data: Data = None,
    *,
    split: str = "test",
    batch_size: int | None = None,
    num_workers: int | None = None,
    host: PluginHost | None = None,
    path_column: str = "path",
) -> Predictions:
    """Predict on ``data`` with a loaded run model; return every row (on rank 0 under DDP).

    Args:
        loaded: from :func:`load_run_model`.
        data: ``None`` (the run's own dataset, ``split``: ids are its listed files, with a
            ``label`` column when it knows the labels), a dataset config file (``.yaml`` /
            ``.json``: a dataset component, or a ``data:`` section; its ``split``), a CSV with a
            ``path_column`` of image files (relative to the CSV; a ``label`` column is kept), a
            folder of images (searched recursively), a tensor ``N x C x H x W`` (or one image),
            or a torch dataset of sample dicts; the run's eval transforms are applied to each.
        split: which split of a dataset to predict on.
        batch_size: default: the config's ``eval_batch_size`` (else ``batch_size``).
        num_workers: default: the config's ``data.loader.num_workers``.
        host: the plugin host (needed for dataset configs).
        path_column: the image column of a CSV.

    Under ``torchrun`` each rank predicts every k-th item; rank 0 returns all rows in order,
    the other ranks an empty :class:`Predictions`.
    """
    items, extra = as_items(loaded, data, split, host, path_column)
    loader_config = loaded.built.config.data.loader
    rank, world = _world()
    loader = torch.utils.data.DataLoader(
        items,
        batch_size=batch_size or loader_config.eval_batch_size or loader_config.batch_size,
        sampler=EvalShardSampler(len(items), rank, world),
        num_workers=loader_config.num_workers if num_workers is None else num_workers,
        pin_memory=loaded.device.type == "cuda",
    )
    amp = loaded.built.config.train.amp
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(amp)) if amp else None
    chunks: list[torch.Tensor] = []
    for batch in loader:
        batch = move_batch(batch, loaded.device)
        autocast = (
            torch.autocast(loaded.device.type, dtype=dtype)
            if dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            outputs = loaded.model(batch)
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs
        chunks.append(logits.float().reshape(logits.shape[0], -1).cpu())
    mine = torch.cat(chunks) if chunks else torch.zeros(0, 0)
    indices = list(EvalShardSampler(len(items), rank, world))
    if world > 1:
        gathered: list[Any] = [None] * world
        torch.distributed.all_gather_object(gathered, (indices, mine))
        if rank != 0:
            return Predictions([], np.zeros((0, 0)), loaded.task, loaded.class_names)
        order = [i for idx, _ in gathered for i in idx]
        stacked = torch.cat([out for _, out in gathered if len(out)])
        mine = torch.empty_like(stacked)
        mine[torch.as_tensor(order)] = stacked
    return Predictions(
        [items.ids[i] for i in range(len(items))],
        mine.numpy(),
        loaded.task,
        loaded.class_names,
        extra,
    )
