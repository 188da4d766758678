"""Variable-length sequences: the batch contract, its collate, and evaluators that gather items.

One item is one whole sequence (a video's clip features, a signal): samplers and the evaluation
shards split a split by item, so a sequence is never cut across ranks.

A **sample** is a dict with

- ``features``: ``[T, C]`` float, one row per step (``T`` differs between items);
- ``frame_labels`` (optional): ``[T]`` int64, one class per step, :data:`IGNORE_INDEX` where
  unlabelled;
- ``segments`` (optional): ``[N, 2]`` float ``(start, end)`` on the step grid, with
  ``segment_labels``: ``[N]`` int64 (``N`` may be 0);
- ``index``: int, the item's position in its split. Evaluators order the items they gather
  across ranks by it, so a 2-rank result equals the 1-process one exactly;
- ``step_seconds`` / ``time_offset`` (optional): floats mapping step ``t`` to seconds,
  ``t * step_seconds + time_offset``;
- ``meta`` (optional): a dict of plain values (video id, fps), collated as a list.

The **batch** that :class:`SequenceCollate` makes from ``B`` samples has ``features``
``[B, T_max, C]`` (zero-padded), ``mask`` ``[B, T_max]`` bool (``True`` on real steps),
``lengths`` ``[B]``, ``frame_labels`` ``[B, T_max]`` (padded with :data:`IGNORE_INDEX`),
``segments`` ``[B, N_max, 2]`` / ``segment_labels`` ``[B, N_max]`` with ``segment_mask``
``[B, N_max]``, ``index`` ``[B]``, and ``meta`` as a list; other keys go through torch's default
collate. Everything per item is batch-first, so a batch can be sharded and moved like any other.

A split declares its collate with a ``collate_fn`` attribute; :func:`split_collate` finds it
through wrappers (per-sample transforms, subsets, concatenations) and the engine's DataLoaders use
it. :class:`SequenceEvaluator` keeps per-item results of any length and gathers them across ranks
without the two failures of plain ``cat`` list states: torchmetrics concatenates a list of
ragged tensors into one (item boundaries are lost), and a rank that saw no item sends an empty
float tensor of another shape and dtype, which aborts gloo's all-gather.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, default_collate
from torchmetrics.utilities import dim_zero_cat

from asklepios_sdk.components import Batch, Evaluator
from asklepios_sdk.context import BuildContext
from asklepios_sdk.errors import ComponentError

__all__ = [
    "IGNORE_INDEX",
    "ItemTable",
    "SequenceCollate",
    "SequenceEvaluator",
    "batch_index",
    "example_sequence_batch",
    "pad_sequences",
    "split_collate",
    "unpad",
]

IGNORE_INDEX = -100
"""Label of padded or unlabelled steps and segments (``torch.nn.CrossEntropyLoss``'s default)."""


def pad_sequences(
    sequences: Sequence[Tensor], pad_value: float = 0.0, multiple_of: int = 1
) -> tuple[Tensor, Tensor]:
    """Stack ``[T_i, ...]`` tensors into ``[B, T, ...]`` and a ``[B, T]`` bool mask.

    Args:
        sequences: one tensor per item; all share the trailing shape and dtype.
        pad_value: value of the padded steps.
        multiple_of: round ``T`` (the longest length) up to a multiple of this, for models whose
            strides need it.

    Returns:
        ``(padded, mask)``; ``mask[i, t]`` is ``True`` for ``t < len(sequences[i])``.
    """
    if not sequences:
        raise ComponentError("pad_sequences: no sequences to pad")
    if multiple_of < 1:
        raise ComponentError(f"pad_sequences: multiple_of must be >= 1, got {multiple_of}")
    trailing = {tuple(s.shape[1:]) for s in sequences}
    if len(trailing) > 1:
        raise ComponentError(
            f"pad_sequences: items have different trailing shapes {sorted(trailing)}; every "
            "step of every item needs the same width"
        )
    lengths = [int(s.shape[0]) for s in sequences]
    longest = max(lengths)
    longest = -(-longest // multiple_of) * multiple_of
    first = sequences[0]
    padded = first.new_full((len(sequences), longest, *first.shape[1:]), pad_value)
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for i, (sequence, length) in enumerate(zip(sequences, lengths, strict=True)):
        padded[i, :length] = sequence
        mask[i, :length] = True
    return padded, mask


def unpad(padded: Tensor, mask: Tensor) -> list[Tensor]:
    """Return the real steps of each item of a padded ``[B, T, ...]`` tensor."""
    return [padded[i][mask[i]] for i in range(padded.shape[0])]


def _as_tensor(value: Any, key: str, position: int) -> Tensor:
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ComponentError(
            f"SequenceCollate: sample {position} has {key!r} of type {type(value).__name__}, "
            "which is not an array"
        ) from err


@dataclass(frozen=True)
class SequenceCollate:
    """Collate sequence samples: pad per-step and per-segment keys, add masks and lengths.

    Attributes:
        step_keys: keys padded along their first (time) axis; the first one sets ``mask`` and
            ``lengths`` and must be in every sample.
        segment_keys: keys padded along their first (segment) axis, with ``segment_mask``.
        list_keys: keys kept as a plain list (metadata).
        multiple_of: pad the time axis to a multiple of this.
        feature_pad: value of padded float steps and segments; integer keys pad with
            :data:`IGNORE_INDEX`, boolean keys with ``False``.
    """

    step_keys: tuple[str, ...] = ("features", "frame_labels")
    segment_keys: tuple[str, ...] = ("segments", "segment_labels")
    list_keys: tuple[str, ...] = ("meta",)
    multiple_of: int = 1
    feature_pad: float = 0.0

    def _pad_value(self, tensor: Tensor) -> float:
        if tensor.dtype == torch.bool:
            return False
        return self.feature_pad if tensor.is_floating_point() else IGNORE_INDEX

    def _padded(self, samples: Sequence[Mapping[str, Any]], key: str) -> tuple[Tensor, Tensor]:
        tensors = [_as_tensor(s[key], key, i) for i, s in enumerate(samples)]
        multiple = self.multiple_of if key in self.step_keys else 1
        try:
            return pad_sequences(tensors, self._pad_value(tensors[0]), multiple)
        except ComponentError as err:
            shapes = [tuple(t.shape) for t in tensors]
            raise ComponentError(f"SequenceCollate: {key!r} of shapes {shapes}: {err}") from err

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> Batch:
        """Return the batch of ``samples`` (see the module docstring for its keys)."""
        if not samples:
            raise ComponentError("SequenceCollate: empty batch")
        main = self.step_keys[0]
        keys = set(samples[0])
        for i, sample in enumerate(samples):
            if main not in sample:
                raise ComponentError(
                    f"SequenceCollate: sample {i} has no {main!r} (keys {sorted(sample)}); a "
                    f"sequence sample carries {main!r} of shape [T, C]"
                )
            if set(sample) != keys:
                raise ComponentError(
                    f"SequenceCollate: sample {i} has keys {sorted(sample)}, sample 0 has "
                    f"{sorted(keys)}; every sample of a split needs the same keys"
                )
        batch: Batch = {}
        for key in self.step_keys:
            if key in keys:
                batch[key], mask = self._padded(samples, key)
                if key == main:
                    batch["mask"] = mask
                    batch["lengths"] = mask.sum(dim=1)
                elif batch[key].shape[1] != batch["mask"].shape[1]:
                    raise ComponentError(
                        f"SequenceCollate: {key!r} and {main!r} differ in length in some sample"
                    )
        for key in self.segment_keys:
            if key in keys:
                batch[key], batch["segment_mask"] = self._padded(samples, key)
        for key in sorted(keys - set(self.step_keys) - set(self.segment_keys)):
            values = [s[key] for s in samples]
            batch[key] = values if key in self.list_keys else default_collate(values)
        return batch


def split_collate(split: Any) -> Callable[[list[Any]], Any] | None:
    """Return the collate ``split`` declares (its ``collate_fn``), looking through wrappers.

    A wrapper is followed through ``inner`` (the engine's per-sample transforms) or ``dataset``
    (``torch.utils.data.Subset``); the parts of a ``ConcatDataset`` must declare equal collates.
    ``None`` means torch's default collate.

    Raises:
        ComponentError: the parts of a concatenation declare different collates.
    """
    seen: set[int] = set()
    node = split
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        collate = getattr(node, "collate_fn", None)
        if collate is not None:
            return collate
        if isinstance(node, ConcatDataset):
            found = [split_collate(part) for part in node.datasets]
            if any(c != found[0] for c in found[1:]):
                raise ComponentError(
                    f"the parts of a concatenated split declare different collates {found}; "
                    "give every part the same collate_fn"
                )
            return found[0] if found else None
        node = getattr(node, "inner", None) or getattr(node, "dataset", None)
    return None


def example_sequence_batch(
    ctx: BuildContext,
    batch_size: int = 4,
    lengths: Sequence[int] | None = None,
    num_segments: int = 2,
    seed: int = 0,
) -> Batch:
    """Make a tiny padded sequence batch following the contract (for tests and the kit).

    The width is ``ctx.data.num_features`` (else ``in_channels``, else 8) and the classes
    ``ctx.data.num_classes`` (else 3). Lengths default to ``5, 8, 11, ...``, so items differ;
    segments lie inside their item and frame labels follow them (unlabelled steps ignored).
    """
    gen = torch.Generator().manual_seed(seed)
    width = ctx.data.num_features or ctx.data.in_channels or 8
    classes = ctx.data.num_classes or 3
    sizes = list(lengths) if lengths is not None else [5 + 3 * i for i in range(batch_size)]
    collate = SequenceCollate()
    samples = []
    for index, length in enumerate(sizes):
        frame_labels = torch.full((length,), IGNORE_INDEX, dtype=torch.int64)
        bounds = torch.linspace(0, length, num_segments + 1)
        segments = torch.stack([bounds[:-1], bounds[1:]], dim=1)
        segment_labels = torch.randint(0, classes, (num_segments,), generator=gen)
        for (start, end), label in zip(segments.tolist(), segment_labels.tolist(), strict=True):
            frame_labels[int(start) : int(end)] = label
        samples.append(
            {
                "features": torch.randn(length, width, generator=gen),
                "frame_labels": frame_labels,
                "segments": segments,
                "segment_labels": segment_labels,
                "index": index,
            }
        )
    return collate(samples)


@dataclass
class ItemTable:
    """Per-item results gathered from every rank, in ``index`` order.

    Attributes:
        index: ``[M]`` int64, the items' positions in their split (sorted).
        flat: per registered item state, every item's rows end to end (``[R]`` or
            ``[R, width]``), in ``index`` order: vectorised code reads this.
        rows: per registered item state, ``[M]`` int64, how many rows each item has.
    """

    index: Tensor
    flat: dict[str, Tensor] = field(default_factory=dict)
    rows: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.index.numel())

    @cached_property
    def values(self) -> dict[str, list[Tensor]]:
        """Per registered item state, one tensor per item, aligned with ``index``."""
        return {
            name: list(torch.split(flat, self.rows[name].tolist()))
            for name, flat in self.flat.items()
        }


def _cat(value: Tensor | list[Tensor], dtype: torch.dtype) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(dtype)
    if not value:
        return torch.empty(0, dtype=dtype)
    return dim_zero_cat(value).to(dtype)


def _ramps(begin: Tensor, sizes: Tensor) -> Tensor:
    """Return the runs ``begin[i], ..., begin[i] + sizes[i] - 1`` end to end."""
    shift = torch.cumsum(sizes, 0) - sizes - begin
    return torch.arange(int(sizes.sum())) - torch.repeat_interleave(shift, sizes)


class SequenceEvaluator(Evaluator):
    """An evaluator whose states are per-item tensors of any length, gathered by item index.

    Declare item states in ``__init__`` with :meth:`add_item_state`, add each batch's items in
    ``update`` with :meth:`append_padded` (padded tensors and masks, as batches come) or
    :meth:`append_items` (one tensor per item), and read every rank's items in ``compute`` with
    :meth:`items`, ordered by the samples' ``index``. Each item state is stored as ``cat`` states
    (flat values, a keep flag per stored row, rows per item), so any torchmetrics sync gathers
    it; a rank without items sends empty tensors of the declared dtype. Padded batches are
    stored as they come, padding included, and :meth:`items` drops the padding in one pass: a
    per-batch masked copy costs more than the rest of an update.
    """

    item_index: list[Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._item_specs: dict[str, tuple[torch.dtype, int | None]] = {}
        self.add_state("item_index", default=[], dist_reduce_fx="cat")

    def add_item_state(
        self, name: str, dtype: torch.dtype = torch.float32, width: int | None = None
    ) -> None:
        """Declare ``name``: per item a ``[n]`` tensor, or ``[n, width]`` when ``width`` is set."""
        if name in self._item_specs or name == "item_index":
            raise ComponentError(f"{type(self).__name__}: item state {name!r} declared twice")
        self._item_specs[name] = (dtype, width)
        self.add_state(name, default=[], dist_reduce_fx="cat")
        self.add_state(f"{name}_keep", default=[], dist_reduce_fx="cat")
        self.add_state(f"{name}_rows", default=[], dist_reduce_fx="cat")

    def _check_states(self, method: str, names: Sequence[str]) -> None:
        if set(names) != set(self._item_specs):
            raise ComponentError(
                f"{type(self).__name__}.{method}: got states {sorted(names)}, declared "
                f"{sorted(self._item_specs)}"
            )

    def _append(self, name: str, flat: Tensor, keep: Tensor, rows: Tensor) -> None:
        """Store one batch of ``name``: values, a keep flag per stored row, rows per item."""
        dtype = self._item_specs[name][0]
        getattr(self, name).append(flat.reshape(-1).to(device=self.device, dtype=dtype))
        getattr(self, f"{name}_keep").append(keep.to(device=self.device, dtype=torch.uint8))
        getattr(self, f"{name}_rows").append(rows.to(device=self.device, dtype=torch.int64))

    def append_items(self, index: Tensor, **values: Sequence[Tensor]) -> None:
        """Add one batch of items: ``index`` ``[B]`` and, per item state, ``B`` tensors."""
        index = torch.as_tensor(index).reshape(-1).to(torch.int64)
        self._check_states("append_items", list(values))
        for name, parts in values.items():
            width = self._item_specs[name][1]
            if len(parts) != len(index):
                raise ComponentError(
                    f"{type(self).__name__}.append_items: {len(parts)} values of {name!r} for "
                    f"{len(index)} items"
                )
            shaped = [torch.as_tensor(p) for p in parts]
            sizes = [p.numel() // (width or 1) for p in shaped]
            flat = torch.cat([p.reshape(-1) for p in shaped]) if shaped else torch.empty(0)
            if flat.numel() != sum(sizes) * (width or 1):
                raise ComponentError(
                    f"{type(self).__name__}: item state {name!r} has rows of width {width}; got "
                    f"{flat.numel()} values for {sum(sizes)} rows"
                )
            keep = torch.ones(sum(sizes), dtype=torch.uint8)
            self._append(name, flat, keep, torch.tensor(sizes, dtype=torch.int64))
        self.item_index.append(index.to(self.device))

    def append_padded(self, index: Tensor, **values: tuple[Tensor, Tensor]) -> None:
        """Add one batch of padded items: per state ``(values [B, N, ...], mask [B, N])``.

        The real rows of item ``i`` are ``values[i][mask[i]]``; this is the shape the sequence
        collate gives (``segments`` with ``segment_mask``, per-step keys with ``mask``).
        """
        index = torch.as_tensor(index).reshape(-1).to(torch.int64)
        self._check_states("append_padded", list(values))
        for name, (padded, mask) in values.items():
            mask = mask.bool()
            if mask.dim() != 2 or tuple(padded.shape[:2]) != tuple(mask.shape):
                raise ComponentError(
                    f"{type(self).__name__}.append_padded: {name!r} has shape "
                    f"{tuple(padded.shape)} and mask {tuple(mask.shape)}; expected [B, N, ...] "
                    "and [B, N]"
                )
            if mask.shape[0] != len(index):
                raise ComponentError(
                    f"{type(self).__name__}.append_padded: {mask.shape[0]} items of {name!r} "
                    f"for {len(index)} indices"
                )
            width = self._item_specs[name][1]
            if math.prod(padded.shape[2:]) != (width or 1):
                raise ComponentError(
                    f"{type(self).__name__}.append_padded: {name!r} has rows of shape "
                    f"{tuple(padded.shape[2:])}; the state was declared with width {width}"
                )
            self._append(name, padded, mask.reshape(-1), mask.sum(dim=1))
        self.item_index.append(index.to(self.device))

    def sync(self, *args: Any, **kwargs: Any) -> None:
        """Sync the states across ranks; a rank without items sends typed empty tensors."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            dtypes = {"item_index": torch.int64}
            for name, (dtype, _) in self._item_specs.items():
                dtypes[name] = dtype
                dtypes[f"{name}_keep"] = torch.uint8
                dtypes[f"{name}_rows"] = torch.int64
            for state, dtype in dtypes.items():
                value = getattr(self, state)
                if isinstance(value, list) and not value:
                    value.append(torch.empty(0, dtype=dtype, device=self.device))
        super().sync(*args, **kwargs)

    def items(self) -> ItemTable:
        """Return every item seen (on all ranks, once synced), ordered by ``index``."""
        index = _cat(self.item_index, torch.int64).cpu()
        order = torch.argsort(index, stable=True)
        in_order = bool((order == torch.arange(len(order))).all())
        table = ItemTable(index[order])
        for name, (dtype, width) in self._item_specs.items():
            flat = _cat(getattr(self, name), dtype).cpu()
            keep = _cat(getattr(self, f"{name}_keep"), torch.uint8).cpu().bool()
            rows = _cat(getattr(self, f"{name}_rows"), torch.int64).cpu()
            kept = int(keep.sum())
            if (
                keep.numel() * (width or 1) != flat.numel()
                or int(rows.sum()) != kept
                or len(rows) != len(index)
            ):
                raise ComponentError(
                    f"{type(self).__name__}: item state {name!r} holds {flat.numel()} values, "
                    f"{kept} kept rows and {len(rows)} items for {len(index)} indices; were the "
                    "states synced by another reduction?"
                )
            shaped = flat.reshape(-1, width) if width is not None else flat
            if kept != keep.numel():
                shaped = shaped[keep]
            if not in_order:  # gather each item's rows, items in index order
                first = torch.cumsum(rows, 0) - rows
                rows = rows[order]
                shaped = shaped[_ramps(first[order], rows)]
            table.flat[name], table.rows[name] = shaped, rows
        return table

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], Batch]:
        """Return per-step ``logits`` ``[B, T, K]`` and an example sequence batch."""
        batch = example_sequence_batch(ctx, batch_size)
        classes = ctx.data.num_classes or 3
        gen = torch.Generator().manual_seed(2)
        logits = torch.randn(*batch["mask"].shape, classes, generator=gen)
        return {"logits": logits}, batch


def batch_index(batch: Mapping[str, Any], who: str) -> Tensor:
    """Return the batch's ``index`` ``[B]``, or raise naming the evaluator that needs it."""
    index = batch.get("index")
    if not isinstance(index, Tensor):
        raise ComponentError(
            f"{who}: the batch has no 'index' (keys {sorted(batch)}); a sequence dataset puts "
            "each item's position in its split into the sample as 'index', so results gathered "
            "across ranks keep one order"
        )
    return index.reshape(-1).to(torch.int64)
