"""The variable-length sequence contract: padding, collate, collate lookup, sharding, gathering.

The 2-rank tests start two gloo processes (file rendezvous, CPU) and compare with one process.
They also pin down why the SDK keeps item states itself: torchmetrics' ``cat`` list states lose
item boundaries of ragged tensors, and a rank without items aborts gloo's all-gather.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from asklepios_sdk import (
    BuildContext,
    ComponentError,
    DataFacts,
    SequenceCollate,
    SequenceEvaluator,
    ShardedSampler,
    split_collate,
)
from asklepios_sdk.sequences import (
    IGNORE_INDEX,
    batch_index,
    example_sequence_batch,
    pad_sequences,
    unpad,
)
from torch.utils.data import ConcatDataset, DataLoader, Subset


def _sample(index: int, length: int, width: int = 3, segments: int = 2) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(index)
    return {
        "features": torch.randn(length, width, generator=gen),
        "frame_labels": torch.randint(0, 4, (length,), generator=gen),
        "segments": torch.rand(segments, 2, generator=gen).sort(dim=1).values * length,
        "segment_labels": torch.randint(0, 4, (segments,), generator=gen),
        "index": index,
        "step_seconds": 0.5,
        "meta": {"video_id": f"v{index}"},
    }


class _Videos(torch.utils.data.Dataset):
    """Videos of lengths ``lengths``; the split declares the sequence collate."""

    collate_fn = SequenceCollate()

    def __init__(self, lengths: list[int]) -> None:
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _sample(index, self.lengths[index], segments=index % 3)


class _Transformed(torch.utils.data.Dataset):
    """Stands for the engine's per-sample-transform wrapper (it keeps the split as ``inner``)."""

    def __init__(self, inner: torch.utils.data.Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        return self.inner[index]


# -- padding ---------------------------------------------------------------------------------------


def test_pad_sequences_pads_masks_and_round_trips() -> None:
    items = [torch.arange(n * 2, dtype=torch.float32).reshape(n, 2) + 1 for n in (3, 1, 5)]
    padded, mask = pad_sequences(items, pad_value=-7.0)
    assert padded.shape == (3, 5, 2) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [3, 1, 5]
    assert bool((padded[~mask] == -7.0).all())
    for item, back in zip(items, unpad(padded, mask), strict=True):
        assert torch.equal(item, back)


@pytest.mark.parametrize(("lengths", "multiple", "expected"), [((3, 5), 4, 8), ((8,), 4, 8)])
def test_pad_sequences_rounds_up_to_a_multiple(lengths, multiple, expected) -> None:
    padded, mask = pad_sequences([torch.ones(n, 1) for n in lengths], multiple_of=multiple)
    assert padded.shape[1] == expected == mask.shape[1]


def test_an_empty_item_is_all_padding() -> None:
    padded, mask = pad_sequences([torch.ones(0, 2), torch.ones(2, 2)])
    assert mask.tolist() == [[False, False], [True, True]]
    assert padded[0].abs().sum() == 0


def test_pad_sequences_rejects_mixed_widths_and_nothing() -> None:
    with pytest.raises(ComponentError, match="trailing shapes"):
        pad_sequences([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ComponentError, match="no sequences"):
        pad_sequences([])


# -- collate ---------------------------------------------------------------------------------------


def test_collate_pads_steps_and_segments_and_keeps_metadata_as_a_list() -> None:
    samples = [_sample(0, 4, segments=0), _sample(1, 7, segments=3), _sample(2, 1, segments=1)]
    batch = SequenceCollate()(samples)
    assert batch["features"].shape == (3, 7, 3)
    assert batch["lengths"].tolist() == [4, 7, 1]
    assert batch["mask"].sum(dim=1).tolist() == [4, 7, 1]
    assert batch["frame_labels"].shape == (3, 7)
    assert bool((batch["frame_labels"][~batch["mask"]] == IGNORE_INDEX).all())
    assert batch["segments"].shape == (3, 3, 2)
    assert batch["segment_mask"].sum(dim=1).tolist() == [0, 3, 1]
    assert bool((batch["segment_labels"][~batch["segment_mask"]] == IGNORE_INDEX).all())
    assert batch["index"].tolist() == [0, 1, 2] and batch["index"].dtype == torch.int64
    assert batch["step_seconds"].dtype == torch.float64
    assert batch["meta"] == [{"video_id": "v0"}, {"video_id": "v1"}, {"video_id": "v2"}]
    for i, sample in enumerate(samples):
        assert torch.equal(batch["features"][i][batch["mask"][i]], sample["features"])
        kept = batch["segments"][i][batch["segment_mask"][i]]
        assert torch.equal(kept, sample["segments"])


def test_collate_accepts_numpy_and_a_time_multiple() -> None:
    samples = [{"features": np.ones((n, 2), dtype=np.float32), "index": n} for n in (2, 3)]
    batch = SequenceCollate(multiple_of=4)(samples)
    assert batch["features"].shape == (2, 4, 2) and "segments" not in batch


def test_collate_errors_name_the_sample() -> None:
    collate = SequenceCollate()
    with pytest.raises(ComponentError, match="sample 1 has no 'features'"):
        collate([_sample(0, 2), {"index": 1}])
    with pytest.raises(ComponentError, match="same keys"):
        collate([_sample(0, 2), {"features": torch.ones(2, 3)}])
    with pytest.raises(ComponentError, match="trailing shapes"):
        collate([_sample(0, 2, width=3), _sample(1, 2, width=5)])
    bad = _sample(1, 3)
    bad["frame_labels"] = torch.zeros(5, dtype=torch.int64)
    with pytest.raises(ComponentError, match="differ in length"):
        collate([_sample(0, 2), bad])


def test_collate_pickles_and_compares_by_settings() -> None:
    collate = SequenceCollate(multiple_of=8)
    assert pickle.loads(pickle.dumps(collate)) == collate
    assert collate != SequenceCollate()


# -- the split declares its collate ----------------------------------------------------------------


def test_split_collate_looks_through_wrappers() -> None:
    videos = _Videos([3, 4])
    assert split_collate(videos) == SequenceCollate()
    assert split_collate(_Transformed(videos)) == SequenceCollate()
    assert split_collate(Subset(ConcatDataset([videos, _Videos([2])]), [0, 2])) is not None
    assert split_collate(torch.utils.data.TensorDataset(torch.ones(2))) is None


def test_split_collate_rejects_a_concatenation_of_different_collates() -> None:
    other = _Videos([2])
    other.collate_fn = SequenceCollate(multiple_of=4)  # type: ignore[misc]
    with pytest.raises(ComponentError, match="different collates"):
        split_collate(ConcatDataset([_Videos([3]), other]))


def test_a_dataloader_with_the_declared_collate_batches_whole_videos() -> None:
    split = _Transformed(_Videos([5, 2, 9, 4, 1]))
    loader = DataLoader(split, batch_size=2, collate_fn=split_collate(split))
    batches = list(loader)
    assert [b["lengths"].tolist() for b in batches] == [[5, 2], [9, 4], [1]]


# -- sharding is by video --------------------------------------------------------------------------


class _Shuffled(ShardedSampler):
    def epoch_indices(self, epoch: int, generator: np.random.Generator) -> np.ndarray:
        return generator.permutation(self.num_samples)


@pytest.mark.parametrize("num_videos", [7, 8])
def test_ranks_get_disjoint_whole_videos_that_cover_the_split(num_videos: int) -> None:
    lengths = [3 + (7 * i) % 11 for i in range(num_videos)]
    split = _Videos(lengths)
    seen: list[list[int]] = []
    for rank in (0, 1):
        sampler = _Shuffled(num_videos, seed=5, rank=rank, world_size=2)
        sampler.set_epoch(1)
        loader = DataLoader(split, batch_size=2, sampler=sampler, collate_fn=split.collate_fn)
        indices = []
        for batch in loader:
            for i, length in zip(batch["index"].tolist(), batch["lengths"].tolist(), strict=True):
                assert length == lengths[i]  # a video is never cut across ranks or batches
                indices.append(i)
        seen.append(indices)
    assert len(seen[0]) == len(seen[1])  # equal shares keep DDP in step
    union = set(seen[0]) | set(seen[1])
    assert union == set(range(num_videos))
    overlap = len(seen[0]) + len(seen[1]) - num_videos
    assert overlap == num_videos % 2  # only the padding item repeats, as DistributedSampler does


# -- example batch ---------------------------------------------------------------------------------


def test_example_sequence_batch_follows_the_contract() -> None:
    ctx = BuildContext(data=DataFacts(task="phase", num_classes=5, num_features=6))
    batch = example_sequence_batch(ctx, batch_size=3)
    assert batch["features"].shape == (3, 11, 6)
    assert batch["lengths"].tolist() == [5, 8, 11]
    labels = batch["frame_labels"][batch["mask"]]
    assert bool(((labels >= 0) & (labels < 5)).all())
    assert bool((batch["segments"][..., 1] <= batch["lengths"][:, None]).all())
    assert batch_index(batch, "test").tolist() == [0, 1, 2]
    with pytest.raises(ComponentError, match="has no 'index'"):
        batch_index({"features": batch["features"]}, "my.evaluator")


# -- gathering items -------------------------------------------------------------------------------


class _Lengths(SequenceEvaluator):
    """Record each item's valid logits row by row and its segments; report order-sensitive sums."""

    def __init__(self) -> None:
        super().__init__()
        self.add_item_state("scores", torch.float64)
        self.add_item_state("segments", torch.float32, width=2)

    def update(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        mask = batch["mask"]
        scores = [outputs["logits"][i][mask[i]].double().sum(-1) for i in range(len(mask))]
        segments = [batch["segments"][i][batch["segment_mask"][i]] for i in range(len(mask))]
        self.append_items(batch_index(batch, "lengths"), scores=scores, segments=segments)

    def compute(self) -> dict[str, torch.Tensor]:
        table = self.items()
        weights = torch.arange(1, len(table) + 1, dtype=torch.float64)
        per_item = torch.stack(
            [s.sum() if s.numel() else s.new_zeros(()) for s in table.values["scores"]]
        )
        return {
            "items": torch.tensor(float(len(table))),
            "weighted": (per_item * weights).sum(),  # changes if the order changes
            "segments": torch.tensor(float(sum(len(s) for s in table.values["segments"]))),
            "index": table.index.double() @ weights,
        }


def test_items_come_back_in_index_order_with_their_lengths() -> None:
    ctx = BuildContext(data=DataFacts(num_classes=3, num_features=4))
    evaluator = _Lengths()
    outputs, batch = evaluator.example_inputs(ctx, batch_size=5)
    order = [3, 0, 4, 1, 2]
    shuffled = {k: v[order] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    evaluator.update({"logits": outputs["logits"][order]}, shuffled)
    table = evaluator.items()
    assert table.index.tolist() == [0, 1, 2, 3, 4]
    assert [len(s) for s in table.values["scores"]] == batch["lengths"].tolist()
    assert all(s.shape[1] == 2 for s in table.values["segments"])
    # the flat view holds the same rows end to end, items in index order
    assert table.rows["scores"].tolist() == batch["lengths"].tolist()
    expected = [outputs["logits"][i][batch["mask"][i]].double().sum(-1) for i in range(5)]
    assert torch.equal(table.flat["scores"], torch.cat(expected))
    assert all(torch.equal(a, b) for a, b in zip(table.values["scores"], expected, strict=True))
    assert table.flat["segments"].shape == (int(table.rows["segments"].sum()), 2)
    evaluator.reset()
    assert len(evaluator.items()) == 0


def test_append_items_checks_the_declared_states() -> None:
    evaluator = _Lengths()
    with pytest.raises(ComponentError, match="declared"):
        evaluator.append_items(torch.tensor([0]), scores=[torch.ones(2)])
    with pytest.raises(ComponentError, match="1 values of 'scores' for 2 items"):
        evaluator.append_items(
            torch.tensor([0, 1]), scores=[torch.ones(2)], segments=[torch.ones(1, 2)] * 2
        )
    with pytest.raises(ComponentError, match="declared twice"):
        evaluator.add_item_state("scores")


WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch, torch.distributed as dist
    from torchmetrics import Metric
    rank, rendezvous, tests, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    sys.path.insert(0, tests)
    from asklepios_sdk import BuildContext, DataFacts
    from test_sequences import _Lengths
    dist.init_process_group("gloo", init_method="file://" + rendezvous, rank=rank, world_size=2)


    class Plain(Metric):
        def __init__(self):
            super().__init__()
            self.add_state("rows", default=[], dist_reduce_fx="cat")

        def update(self, x):
            self.rows.append(x)

        def compute(self):
            return self.rows


    results = {}
    metric = Plain()
    for n in [2, 3] if rank == 0 else [1]:
        metric.update(torch.ones(n, 2))
    value = metric.compute()
    results["torchmetrics"] = {"type": type(value).__name__, "shape": list(value.shape)}
    ctx = BuildContext(data=DataFacts(num_classes=3, num_features=4))
    for size in (5, 1):
        evaluator = _Lengths()
        outputs, batch = evaluator.example_inputs(ctx, batch_size=size)
        mine = list(range(rank, size, 2))
        if mine:  # the rank with no item never calls update, as in the engine
            shard = {k: v[mine] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            evaluator.update({"logits": outputs["logits"][mine]}, shard)
        results[str(size)] = {k: float(v) for k, v in evaluator.compute().items()}
    if rank == 0:
        with open(out, "w") as handle:
            json.dump(results, handle)
    dist.barrier()
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the worker on 2 gloo ranks once; return rank 0's results by case."""
    tmp = tmp_path_factory.mktemp("ranks")
    script = tmp / "worker.py"
    script.write_text(WORKER)
    out = tmp / "results.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [str(tmp / "rendezvous"), str(Path(__file__).parent), str(out)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)[-3000:]
    return dict(json.loads(out.read_text()))


@pytest.mark.slow
def test_torchmetrics_cat_states_lose_the_item_boundaries_of_ragged_tensors(two_ranks) -> None:
    # three items of 2, 3 and 1 rows come back as one tensor of 6 rows
    assert two_ranks["torchmetrics"] == {"type": "Tensor", "shape": [6, 2]}


@pytest.mark.slow
@pytest.mark.parametrize("num_items", [5, 1])
def test_two_ranks_gather_the_same_items_in_the_same_order(two_ranks, num_items: int) -> None:
    """With 1 item, rank 1 sees none: it still takes part in the gather with typed empties."""
    ctx = BuildContext(data=DataFacts(num_classes=3, num_features=4))
    evaluator = _Lengths()
    outputs, batch = evaluator.example_inputs(ctx, batch_size=num_items)
    evaluator.update(outputs, batch)
    reference = {k: float(v) for k, v in evaluator.compute().items()}
    assert two_ranks[str(num_items)] == reference


class _PaddedLengths(_Lengths):
    """The same states, added from the padded batch with its masks."""

    def update(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        self.append_padded(
            batch_index(batch, "lengths"),
            scores=(outputs["logits"].double().sum(-1), batch["mask"]),
            segments=(batch["segments"], batch["segment_mask"]),
        )


def test_append_padded_takes_batches_as_the_collate_gives_them() -> None:
    ctx = BuildContext(data=DataFacts(num_classes=3, num_features=4))
    by_item, padded = _Lengths(), _PaddedLengths()
    outputs, batch = by_item.example_inputs(ctx, batch_size=4)
    by_item.update(outputs, batch)
    padded.update(outputs, batch)
    expected = {k: float(v) for k, v in by_item.compute().items()}
    assert {k: float(v) for k, v in padded.compute().items()} == expected
    with pytest.raises(ComponentError, match=r"expected \[B, N, \.\.\.\]"):
        padded.append_padded(
            batch["index"],
            scores=(outputs["logits"].sum(-1), batch["mask"][0]),
            segments=(batch["segments"], batch["segment_mask"]),
        )
    with pytest.raises(ComponentError, match="width 2"):
        padded.append_items(torch.tensor([0]), scores=[torch.ones(1)], segments=[torch.ones(3)])
    with pytest.raises(ComponentError, match=r"rows of shape \(3,\); .* width 2"):
        padded.append_padded(
            batch["index"],
            scores=(outputs["logits"].sum(-1), batch["mask"]),
            segments=(torch.zeros(*batch["segment_mask"].shape, 3), batch["segment_mask"]),
        )
