"""Generation stages: a model makes a dataset on disk, item by item, resumable after a kill.

A stage with ``generate:`` runs its model (an :class:`asklepios_sdk.synthesis.DatasetGenerator`)
over a split of requests instead of training. The contract is in :mod:`asklepios_sdk.synthesis`;
this module keeps it:

- the generated folder is ``<fold dir>/generated/<stage>``;
- progress is the answer cache's append-only journal (:class:`~asklepios.engine.answers.
  AnswerCache`, one file per rank under ``journal/``, merged on read, a partial last line of a
  kill ignored), with the item's index as key and its JSON record as value;
- an item's image is written atomically *before* its record is journaled, so a journaled item
  always has its image, and a resumed stage (any number of ranks) generates only the requests
  no rank journaled: a finished image is never rewritten;
- requests still to do are dealt round-robin to the ranks, batched, and item ``i`` gets the seed
  ``derive_seed(seed, GENERATION_STREAM, i)``;
- once every rank is done, rank 0 writes ``items.jsonl``, ``index.csv`` and, last,
  ``manifest.json`` (``complete: true``), which is what readers check.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from asklepios_sdk import AsklepiosError, split_collate
from asklepios_sdk.io import write_atomic
from asklepios_sdk.synthesis import check_item, item_path

from asklepios.engine.answers import AnswerCache
from asklepios.engine.distributed import barrier
from asklepios.engine.samples import KeyedSplit, preserve_rng
from asklepios.engine.seeding import derive_seed, worker_init

if TYPE_CHECKING:
    from asklepios.config.model import GenerateConfig
    from asklepios.engine.loop import StageRunner

__all__ = ["GENERATION_STREAM", "GenerationError", "generate_dataset", "generated_folder"]

GENERATION_STREAM = 0x6E4E_7A7E
"""Keeps the seeds of generated items apart from every other stream drawn from the run's seed."""


class GenerationError(AsklepiosError):
    """A generation stage cannot run: no generating model, or an item breaks the contract."""


def generated_folder(fold_dir: Path, stage: str) -> Path:
    """Return where stage ``stage`` writes its generated dataset."""
    return fold_dir / "generated" / stage


def _write_image(path: Path, image: torch.Tensor) -> None:
    from PIL import Image

    array = image.detach().cpu().permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    write_atomic(path, write=lambda tmp: picture.save(tmp, format="PNG"))


def _done(cache: AnswerCache, folder: Path, index: int) -> bool:
    """Return whether item ``index`` is journaled and its image (if it has one) is there."""
    text = cache.get(str(index))
    if text is None:
        return False
    path = json.loads(text).get("path")
    return path is None or (folder / path).is_file()


def _index_csv(records: list[dict[str, Any]]) -> str:
    """Return ``path,label`` plus every scalar field as CSV (what ``core.csv`` reads)."""
    columns = ["path", "label"]
    for record in records:
        for key, value in record.items():
            if key not in columns and isinstance(value, bool | int | float | str):
                columns.append(key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        writer.writerow(["" if record.get(c) is None else record.get(c) for c in columns])
    return out.getvalue()


def _finish(runner: StageRunner, folder: Path, total: int, metadata: dict[str, Any]) -> None:
    """Merge the journals into ``items.jsonl``, ``index.csv`` and ``manifest.json`` (rank 0)."""
    cache = AnswerCache(folder / "journal", runner.dist.rank)
    records = [json.loads(a) for k, a in sorted(cache.answers.items(), key=lambda x: int(x[0]))]
    missing = sorted(set(range(total)) - {int(r["index"]) for r in records})
    if missing:
        raise GenerationError(
            f"stage {runner.stage}: items {missing[:10]} were not generated; resume the run"
        )
    write_atomic(folder / "items.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    write_atomic(folder / "index.csv", _index_csv(records))
    write_atomic(
        folder / "manifest.json",
        json={
            "complete": True,
            "items": total,
            "stage": runner.stage,
            "seed": runner.config.seed,
            "dataset": runner.config.data.dataset.model_dump(mode="json"),
            "model": runner.config.model.model_dump(mode="json"),
            "generator": metadata,
        },
    )


def generate_dataset(runner: StageRunner, spec: GenerateConfig, folder: Path) -> dict[str, Any]:
    """Generate the missing items of ``spec.split`` into ``folder``; return the stage summary.

    Raises:
        GenerationError: the model is not a ``DatasetGenerator``, the split does not exist, or
            the model returns a wrong number of items or an item that breaks the contract.
    """
    started = time.time()
    model = runner.model
    generate = getattr(model, "generate_items", None)
    if generate is None:
        raise GenerationError(
            f"stage {runner.stage}: 'generate:' needs a model that generates items "
            f"(asklepios_sdk.synthesis.DatasetGenerator); {type(model).__name__} does not; "
            "put the generating adapter last in model.adapters"
        )
    dataset = runner.built.dataset
    if spec.split not in dataset.split_names:
        raise GenerationError(
            f"stage {runner.stage}: generate.split {spec.split!r} is not a split of "
            f"data.dataset [{runner.config.data.dataset.type}] (splits: {dataset.split_names})"
        )
    requests = dataset.split(spec.split)
    total = len(cast(Sized, requests))
    dist = runner.dist
    cache = AnswerCache(folder / "journal", dist.rank)
    todo = [i for i in range(total) if not _done(cache, folder, i)]
    barrier(dist)  # every rank deals from the same snapshot, before any rank adds to it
    mine = todo[dist.rank :: dist.world_size]
    loader = runner.config.data.loader
    size = spec.batch_size or loader.eval_batch_size or loader.batch_size
    chunks = [mine[i : i + size] for i in range(0, len(mine), size)]
    data_loader = torch.utils.data.DataLoader(
        KeyedSplit(requests, runner.config.seed, spec.split, runner.data_where),
        batch_sampler=chunks,
        collate_fn=split_collate(requests),
        num_workers=loader.num_workers,
        worker_init_fn=worker_init,
    )
    from asklepios.engine.loop import move_batch

    model.eval()
    runner.progress.start_eval(f"generate {spec.split}", len(chunks))
    batches = preserve_rng(data_loader, in_process=loader.num_workers == 0)
    for chunk, batch in zip(chunks, batches, strict=True):
        seeds = [derive_seed(runner.config.seed, GENERATION_STREAM, i) for i in chunk]
        items = generate(move_batch(batch, runner.device), seeds)
        if not isinstance(items, list) or len(items) != len(chunk):
            raise GenerationError(
                f"stage {runner.stage}: {type(model).__name__}.generate_items returned "
                f"{len(items) if isinstance(items, list) else type(items).__name__} items for "
                f"{len(chunk)} requests; return a list with one item per request"
            )
        entries: list[Mapping[str, Any]] = []
        for index, seed, item in zip(chunk, seeds, items, strict=True):
            check_item(item, f"stage {runner.stage}, item {index}")
            path = item_path(index) if item.get("image") is not None else None
            record = {"index": index, "path": path, "seed": seed}
            record.update((k, v) for k, v in item.items() if k != "image")
            if path is not None:
                _write_image(folder / path, item["image"])
            entries.append({"key": str(index), "answer": json.dumps(record)})
        cache.add(entries)
        runner.progress.eval_step()
    runner.progress.end_eval()
    barrier(dist)
    if dist.is_main:
        describe = getattr(model, "generation_metadata", None)
        _finish(runner, folder, total, dict(describe()) if describe is not None else {})
    barrier(dist)
    new = torch.tensor([len(mine)], dtype=torch.int64, device=runner.device)
    if dist.enabled:
        torch.distributed.all_reduce(new)
    return {
        "stage": runner.stage,
        "epochs": 0,
        "generated": {
            "dir": str(folder),
            "items": total,
            "generated_now": int(new.item()),
            "reused": total - int(new.item()),
            "seconds": round(time.time() - started, 2),
        },
    }
