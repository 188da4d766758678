"""Random truncation of a training sequence (ActionFormer's ``truncate_feats``), per sample."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from asklepios_sdk import BuildContext, SampleTransform
from asklepios_sdk.sequences import example_sequence_batch

from asklepios_ophnet.params import TruncateParams

__all__ = ["Truncate"]

_STEP_KEYS = ("features", "frame_labels")


def _randint(low: int, high: int) -> int:
    """Return an integer in ``[low, high]`` from torch's global generator."""
    return int(torch.randint(low, high + 1, ()).item())


class Truncate(SampleTransform):
    """Crop a sequence to a random window, keeping segments that mostly survive the cut.

    A sequence longer than ``max_seq_len`` steps is cut to a window of ``max_seq_len`` steps; a
    shorter one, with ``crop_ratio`` ``(lo, hi)``, to a window of ``randint(max(round(lo*T), 1),
    min(round(hi*T), T))`` steps (left whole if that is ``T``). The window start is drawn up to
    ``max_trials`` times until at least one segment keeps a fraction ``>= trunc_thresh`` of its
    length (with ``no_trunc``, also until no segment is cut). Kept segments are clipped to the
    window and shifted to start at 0; per-step keys are sliced; ``time_offset`` moves with the
    window. Randomness comes from torch's global generator (seeded per sample by the engine).

    References:
        Zhang et al., ActionFormer, ECCV 2022 (training-time truncation), as used by OphNet.
    """

    def __init__(self, params: TruncateParams, ctx: BuildContext) -> None:
        self.params = params

    def window_length(self, length: int) -> int:
        """Draw the window length for a sequence of ``length`` steps."""
        params = self.params
        if length > params.max_seq_len:
            return params.max_seq_len
        if params.crop_ratio is None:
            return length
        low = max(round(params.crop_ratio[0] * length), 1)
        high = min(round(params.crop_ratio[1] * length), length)
        return _randint(low, max(low, high))

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        params = self.params
        length = int(sample["features"].shape[0])
        size = self.window_length(length)
        if size >= length:
            return sample
        segments = torch.as_tensor(sample["segments"], dtype=torch.float32).reshape(-1, 2)
        spans = (segments[:, 1] - segments[:, 0]).abs()
        for _ in range(params.max_trials):
            start = _randint(0, length - size)
            left = segments[:, 0].clamp(min=start)
            right = segments[:, 1].clamp(max=start + size)
            ratio = (right - left).clamp(min=0) / spans
            keep = ratio >= params.trunc_thresh
            if params.no_trunc:
                cut = (ratio > 0) & (ratio < 1)
                if bool(keep.any()) and not bool(cut.any()):
                    break
            elif bool(keep.any()):
                break
        out = dict(sample)
        for key in _STEP_KEYS:
            if key in out:
                out[key] = out[key][start : start + size]
        out["segments"] = torch.stack([left[keep], right[keep]], dim=1) - start
        out["segment_labels"] = torch.as_tensor(sample["segment_labels"])[keep]
        if "time_offset" in out and "step_seconds" in out:
            out["time_offset"] = float(out["time_offset"]) + start * float(out["step_seconds"])
        return out

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return one sequence sample of 11 steps with two segments."""
        batch = example_sequence_batch(ctx, batch_size=1, lengths=[11])
        return {
            "features": batch["features"][0],
            "frame_labels": batch["frame_labels"][0],
            "segments": batch["segments"][0],
            "segment_labels": batch["segment_labels"][0],
            "index": 0,
        }

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Declare no fixed shape: the window length and the kept segments are random."""
        return {}
