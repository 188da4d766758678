"""Private event/censored class balancing shared by the sampler and the faithful KM fit."""

from __future__ import annotations

from typing import Literal

import numpy as np
from asklepios_sdk import ComponentError

__all__ = ["Direction", "balanced_indices"]

Direction = Literal["minority", "events"]


def balanced_indices(
    events: np.ndarray, direction: Direction = "minority", random_state: int | None = 42
) -> np.ndarray:
    """Return row indices with the two classes (event / censored) made equally frequent.

    ``minority`` (default) resamples the rarer class with replacement up to the size of the other
    one. ``events`` reproduces UniSurv ``main.py``: the event rows are always resampled to the
    number of censored rows, which *down*-samples them when events are the majority. The result
    is the kept rows followed by the resampled rows (``sklearn.utils.resample``), unshuffled.
    """
    from sklearn.utils import resample

    events = np.asarray(events).astype(np.int64).reshape(-1)
    event_rows = np.flatnonzero(events == 1)
    censored_rows = np.flatnonzero(events == 0)
    if direction == "events":
        drawn, kept = event_rows, censored_rows
    elif direction == "minority":
        if len(event_rows) <= len(censored_rows):
            drawn, kept = event_rows, censored_rows
        else:
            drawn, kept = censored_rows, event_rows
    else:
        raise ComponentError(f"direction must be 'minority' or 'events', got {direction!r}")
    if len(drawn) == 0 or len(kept) == 0:
        raise ComponentError(
            f"cannot balance events and censored subjects: the training split has "
            f"{len(event_rows)} events and {len(censored_rows)} censored subjects; "
            "drop the unisurv.event_balanced sampler for data with a single class"
        )
    resampled = resample(drawn, replace=True, n_samples=len(kept), random_state=random_state)
    return np.concatenate([kept, np.asarray(resampled, dtype=np.int64)])
