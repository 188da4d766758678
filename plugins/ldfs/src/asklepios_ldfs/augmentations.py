"""Per-batch augmentations: ``ldfs.text_noise`` (stage 1) and ``ldfs.feature_synthesis`` (stage 2).

Both draw from torch's global generator, which the engine seeds, so a run is reproducible and every
call draws fresh noise.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BatchTransform, BuildContext, ComponentError

from asklepios_ldfs._functional import normalize, text_noise
from asklepios_ldfs.params import FeatureSynthesisParams, TextNoiseParams
from asklepios_ldfs.synthesizer import SynthesisNet, load_synthesizer

__all__ = [
    "FeatureSynthesis",
    "TextNoise",
    "synthesizer_path",
]


class TextNoise(BatchTransform):
    """Add fresh noise to every text table each step (reconstructed, §2.5).

    Writes ``batch["text_features"] = {set: normalise(t + sigma * eps)}`` for every set in the data
    facts' ``extras["text_features"]``; ``ldfs.synthesizer`` hands them to the stage-1 losses.
    The noise is norm-relative by default (``eps ~ N(0, I/d)``) or per dimension (CapDec).
    """

    def __init__(self, params: TextNoiseParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        sets = ctx.data.extras.get("text_features")
        if not sets:
            raise ComponentError(
                "ldfs.text_noise: no text features in the data facts (extras['text_features']); "
                "wrap the dataset with 'core.clip_features' or use 'ldfs.toy_clip_space'"
            )
        self.names = tuple(sets)
        for index, name in enumerate(self.names):
            table = torch.as_tensor(np.asarray(sets[name]), dtype=torch.float32)
            self.register_buffer(f"table_{index}", F.normalize(table, dim=-1))

    def tables(self) -> dict[str, torch.Tensor]:
        """Return the clean text tables, by set name."""
        return {name: getattr(self, f"table_{i}") for i, name in enumerate(self.names)}

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        noised = {
            name: text_noise(table, self.params.sigma, None, self.params.convention)
            for name, table in self.tables().items()
        }
        return {**batch, "text_features": noised}


def synthesizer_path(output_dir: str | Path, stage: str) -> Path:
    """Return where the ``stage_end`` hook stores the synthesiser of ``stage``."""
    return Path(output_dir) / "ldfs" / f"synthesizer-{stage}.safetensors"


class FeatureSynthesis(BatchTransform):
    """Append features of the frozen stage-1 synthesiser, with fresh noise every call.

    The batch grows from ``B`` to ``B * (1 + K * M)`` rows (``B * K * M`` without the reals):
    labels and every other per-sample tensor are copied from the source row, ``synthetic`` marks
    the new rows and ``synthetic_domain`` gives their target-domain index (``-1`` for real rows).
    """

    def __init__(self, params: FeatureSynthesisParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        if params.synthesizer_file is not None:
            self.path = Path(params.synthesizer_file).expanduser()
        else:
            if ctx.output_dir is None:
                raise ComponentError(
                    "ldfs.feature_synthesis: 'from_stage' needs the run directory; give "
                    "'synthesizer_file' when running outside 'asklepios run'"
                )
            self.path = synthesizer_path(ctx.output_dir, str(params.from_stage))
        self.net: SynthesisNet | None = None
        # under torchrun rank 0 writes the stage-1 file; the other ranks may get here first
        self.wait_seconds = 120.0 if ctx.world_size > 1 else 0.0

    def attach(self, net: SynthesisNet) -> FeatureSynthesis:
        """Use ``net`` (frozen) instead of loading the file (tests, in-process pipelines)."""
        self.net = net.requires_grad_(False).eval()
        return self

    def _synthesizer(self, device: torch.device) -> SynthesisNet:
        if self.net is None:
            deadline = time.monotonic() + self.wait_seconds
            while not self.path.is_file() and time.monotonic() < deadline:
                time.sleep(0.2)
            self.attach(load_synthesizer(self.path))
        assert self.net is not None
        return self.net.to(device)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        key = self.params.feature_key
        real = batch[key]
        if real.dim() != 2:
            raise ComponentError(
                f"ldfs.feature_synthesis: batch[{key!r}] must be (B, d) features, got "
                f"{tuple(real.shape)}; run stage 2 on cached features (core.clip_features)"
            )
        net = self._synthesizer(real.device)
        with torch.no_grad():
            synthetic, _ = net(normalize(real.float()), batch["label"], self.params.num_draws)
        b, k, m, d = synthetic.shape
        copies = k * m
        out: dict[str, Any] = {}
        for name, value in batch.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == b:
                out[name] = value.repeat_interleave(copies, dim=0)
            else:
                out[name] = value
        out[key] = synthetic.reshape(b * copies, d).to(real.dtype)
        domain = torch.arange(k, device=real.device).repeat_interleave(m).repeat(b)
        out["synthetic"] = torch.ones(b * copies, dtype=torch.bool, device=real.device)
        out["synthetic_domain"] = domain
        if not self.params.include_real:
            return out
        merged: dict[str, Any] = {}
        for name, value in out.items():
            original = batch.get(name)
            if name == "synthetic":
                original = torch.zeros(b, dtype=torch.bool, device=real.device)
            elif name == "synthetic_domain":
                original = torch.full((b,), -1, dtype=torch.long, device=real.device)
            if (
                isinstance(value, torch.Tensor)
                and isinstance(original, torch.Tensor)
                and value.shape[0] == b * copies
                and original.shape[:1] == (b,)
            ):
                merged[name] = torch.cat([original.to(value.dtype), value])
                continue
            merged[name] = value
        return merged

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return the grown shapes: ``B`` rows become ``B * (1 + K * M)`` (``B * K * M``)."""
        net = self._synthesizer(torch.device("cpu"))
        copies = net.num_domains * self.params.num_draws
        rows = shapes[self.params.feature_key][0]
        total = rows * (copies + int(self.params.include_real))
        out = {
            name: (total, *shape[1:]) if shape[:1] == (rows,) else shape
            for name, shape in shapes.items()
        }
        out.update(synthetic=(total,), synthetic_domain=(total,))
        return out

    def example_batch(self, ctx: BuildContext, batch_size: int = 4) -> dict[str, Any]:
        """Return unit features with labels of the loaded synthesiser's width."""
        net = self._synthesizer(torch.device("cpu"))
        gen = torch.Generator().manual_seed(0)
        dim, classes = int(net.text_target.shape[-1]), int(net.text_target.shape[1])
        return {
            "image": F.normalize(torch.randn(batch_size, dim, generator=gen), dim=-1),
            "label": torch.randint(0, classes, (batch_size,), generator=gen),
        }
