"""Reading samples for the loop: randomness keyed by the sample, errors located by split and row.

Each sample is read with Python's, NumPy's and torch's global generators seeded from
``(seed, epoch, position in the epoch's global order)`` (training) or ``(seed, index)``
(evaluation), so per-sample augmentations and any randomness inside a dataset give the same
result whichever rank or DataLoader worker reads the sample. A failure while reading names the
dataset, split and row in one line, and reads the same from a DataLoader worker as from the main
process.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from asklepios_sdk import AsklepiosError

from asklepios.engine.seeding import derive_seed
from asklepios.sampling import SampleKey

__all__ = ["KeyedSplit", "SampleError", "preserve_rng"]

_EVAL_STREAM = 0x5EED_E7A1  # keeps evaluation draws apart from every training epoch's


class SampleError(AsklepiosError):
    """A sample could not be read; the message names the dataset, split and row.

    A DataLoader worker's error reaches the main process as ``SampleError(text)`` where the text
    is torch's "Caught ... in DataLoader worker" banner plus the worker's traceback; the
    constructor keeps the original one-line message and moves the traceback to
    :attr:`worker_traceback` (shown with ``--debug`` as a note).
    """

    def __init__(self, message: str) -> None:
        banner, found, rest = message.partition("\nOriginal Traceback")
        self.worker_traceback: str | None = None
        marker = f"{type(self).__name__}: "
        if found and banner.startswith("Caught ") and marker in rest:
            self.worker_traceback = "Traceback" + rest
            message = rest[rest.rfind(marker) + len(marker) :].strip()
        super().__init__(message)
        add_note = getattr(self, "add_note", None)  # Python 3.11+: shown with --debug
        if self.worker_traceback is not None and add_note is not None:
            add_note(f"{banner}\n{self.worker_traceback}")


class KeyedSplit(torch.utils.data.Dataset):
    """A split read by :class:`~asklepios.sampling.SampleKey` (training) or index (evaluation).

    Args:
        inner: the split (per-sample transforms included).
        seed: the run's seed.
        split: the split's name, for messages.
        where: the dataset's config path and id, for messages (``data.dataset [core.csv]``).
    """

    def __init__(self, inner: torch.utils.data.Dataset, seed: int, split: str, where: str) -> None:
        self.inner = inner
        self.seed = seed
        self.split = split
        self.where = where

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, key: SampleKey | int) -> Any:
        if isinstance(key, tuple):
            index = key.row
            seed = derive_seed(self.seed, key.epoch, key.position)
        else:
            index = int(key)
            seed = derive_seed(self.seed, _EVAL_STREAM, index)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.default_generator.manual_seed(seed)
        try:
            return self.inner[index]
        except SampleError:
            raise
        except Exception as err:
            cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            fix = (
                "fix or remove that sample"
                if isinstance(err, AsklepiosError | OSError)
                else "--debug shows the traceback"
            )
            raise SampleError(
                f"{self.where}: split '{self.split}' row {index}: {cause} "
                f"({type(err).__name__}); {fix}"
            ) from err


@contextlib.contextmanager
def _saved_rng() -> Iterator[None]:
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        yield
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])


def preserve_rng(batches: Iterable[Any], in_process: bool) -> Iterator[Any]:
    """Yield ``batches``; when samples are read in this process, keep its generators untouched.

    :class:`KeyedSplit` reseeds the global generators for every sample; read in the main process
    (no DataLoader workers) that would reseed the model's dropout too, so the generators' state
    is saved before each batch is fetched and restored after.
    """
    if not in_process:
        yield from batches
        return
    iterator = iter(batches)
    while True:
        with _saved_rng():
            try:
                batch = next(iterator)
            except StopIteration:
                return
        yield batch
