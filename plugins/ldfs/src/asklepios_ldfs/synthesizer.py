"""The feature synthesiser of stage 1 (adapter ``ldfs.synthesizer``) and its file format.

LDFS (reconstructed, default): ``f~ = normalise(f + g([f ; t^k_y - t^s_y ; z]))``, ``z ~ N(0, I)``,
``g`` a 2-layer MLP (``2d + d_z -> 384 -> d``) whose last layer starts at zero, so the untrained
synthesiser is the identity; one network shared by all target domains (conditioned on the domain
direction) or one per domain (``per_domain_net``). LADS (verified, ``arch: lads``): one MLP per
target domain, ``f~ = normalise(MLP_k(f))``, ``d -> 384 -> d``, deterministic; its directional
loss sees the raw ``MLP_k(f)``, the normalised ``f~`` feeds class consistency and stage 2.

The text tables come from the data facts (``extras["text_features"]``, written by
``core.clip_features`` or ``ldfs.toy_clip_space``); ``d`` is read from them, never from config.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, BuildContext, ComponentError, WeightsError
from asklepios_sdk.io import write_atomic
from torch import Tensor, nn

from asklepios_ldfs._functional import normalize, select_source
from asklepios_ldfs.params import LDFSSynthesizerParams

__all__ = [
    "CLASS_TEXT_SET",
    "LDFSSynthesizer",
    "SynthesisNet",
    "load_synthesizer",
    "save_synthesizer",
    "text_tables",
]


CLASS_TEXT_SET = "classes"
"""Text set of the plain class prompts ("a photo of a {c}"), never a target domain."""


def text_tables(
    ctx: BuildContext, source_sets: Sequence[str], domains: Sequence[str] | None
) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    """Read ``(S, C, d)`` source and ``(K, C, d)`` target text tables from the data facts.

    Raises:
        ComponentError: the facts carry no text features or a named set is missing.
    """
    sets = ctx.data.extras.get("text_features")
    if not sets:
        raise ComponentError(
            "ldfs: no text features in the data facts (extras['text_features']); wrap the dataset "
            "with 'core.clip_features' (prompt_sets: {source: [...], <domain>: [...]}) or use "
            "'ldfs.toy_clip_space'"
        )
    names = (
        tuple(domains)
        if domains is not None
        else tuple(s for s in sets if s not in source_sets and s != CLASS_TEXT_SET)
    )
    missing = [n for n in (*source_sets, *names) if n not in sets]
    if missing or not names:
        raise ComponentError(
            f"ldfs: text sets {missing or '(no target domain)'} not in the data facts; "
            f"available: {sorted(sets)}; set 'source_sets' / 'domains' accordingly"
        )

    def table(name: str) -> Tensor:
        return F.normalize(torch.as_tensor(np.asarray(sets[name]), dtype=torch.float32), dim=-1)

    source = torch.stack([table(n) for n in source_sets])
    target = torch.stack([table(n) for n in names])
    return source, target, names


def _uniform(shape: tuple[int, ...], fan_in: int) -> Tensor:
    bound = 1.0 / math.sqrt(fan_in)
    return torch.empty(shape).uniform_(-bound, bound)


class SynthesisNet(nn.Module):
    """The synthesiser network with its text tables; vectorised over domains and draws.

    Args:
        text_source: ``(S, C, d)`` clean source text features.
        text_target: ``(K, C, d)`` clean target-domain text features.
        arch, per_domain_net, d_z, hidden_dim, zero_init_last: see
            :class:`~asklepios_ldfs.params.LDFSSynthesizerParams`.
        domains: names of the K target domains (kept in the saved file).
    """

    text_source: Tensor
    text_target: Tensor

    def __init__(
        self,
        text_source: Tensor,
        text_target: Tensor,
        arch: str = "ldfs",
        per_domain_net: bool = False,
        d_z: int = 64,
        hidden_dim: int = 384,
        zero_init_last: bool = True,
        domains: Sequence[str] = (),
    ) -> None:
        super().__init__()
        dim = int(text_target.shape[-1])
        num_domains = int(text_target.shape[0])
        self.config = {
            "arch": arch,
            "per_domain_net": per_domain_net,
            "d_z": d_z,
            "hidden_dim": hidden_dim,
            "zero_init_last": zero_init_last,
            "domains": list(domains),
        }
        self.arch = arch
        self.d_z = d_z
        self.register_buffer("text_source", text_source.float().clone())
        self.register_buffer("text_target", text_target.float().clone())
        nets = num_domains if (per_domain_net or arch == "lads") else 1
        fan_in = dim if arch == "lads" else 2 * dim + d_z
        self.w1 = nn.Parameter(_uniform((nets, fan_in, hidden_dim), fan_in))
        self.b1 = nn.Parameter(_uniform((nets, hidden_dim), fan_in))
        if arch == "ldfs" and zero_init_last:
            self.w2 = nn.Parameter(torch.zeros(nets, hidden_dim, dim))
            self.b2 = nn.Parameter(torch.zeros(nets, dim))
        else:
            self.w2 = nn.Parameter(_uniform((nets, hidden_dim, dim), hidden_dim))
            self.b2 = nn.Parameter(_uniform((nets, dim), hidden_dim))

    @property
    def num_domains(self) -> int:
        """Return K, the number of target domains."""
        return int(self.text_target.shape[0])

    def directions(self, features: Tensor, labels: Tensor) -> Tensor:
        """Return ``(B, K, d)`` text directions ``t^k_y - t^{s_j*}_y`` (clean tables)."""
        source = select_source(features, self.text_source, labels)
        return self.text_target[:, labels].transpose(0, 1) - source.unsqueeze(1)

    def _mlp(self, inputs: Tensor) -> Tensor:
        weights: tuple[Tensor, ...] = (self.w1, self.b1, self.w2, self.b2)
        k = inputs.shape[1]
        if weights[0].shape[0] != k:
            weights = tuple(p.expand(k, *p.shape[1:]) for p in weights)
        w1, b1, w2, b2 = weights
        hidden = torch.relu(torch.einsum("bkmi,kih->bkmh", inputs, w1) + b1[None, :, None])
        return torch.einsum("bkmh,khd->bkmd", hidden, w2) + b2[None, :, None]

    def synthesize(
        self,
        features: Tensor,
        labels: Tensor,
        num_draws: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return ``(B, K, M, d)`` features *before* the unit re-normalisation, and the noise.

        ``lads``: the raw MLP output ``MLP_k(f)``, which LADS's directional loss uses
        (``im_diffs = MLP(f) - f``); ``ldfs``: ``f + g([f; dt; z])``.
        """
        f = normalize(features)
        b, d = f.shape
        k, m = self.num_domains, num_draws
        base = f[:, None, None].expand(b, k, m, d)
        if self.arch == "lads":
            return self._mlp(base), f.new_zeros(b, k, m, 0)
        direction = self.directions(f, labels)[:, :, None].expand(b, k, m, d)
        noise = torch.randn((b, k, m, self.d_z), generator=generator, dtype=f.dtype)
        noise = noise.to(f.device)
        return base + self._mlp(torch.cat([base, direction, noise], dim=-1)), noise

    def forward(
        self,
        features: Tensor,
        labels: Tensor,
        num_draws: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Synthesise ``(B, K, M, d)`` unit features for every target domain and noise draw.

        Returns:
            ``(synthetic, noise)``; ``noise`` is ``(B, K, M, d_z)`` (empty for ``lads``).
        """
        raw, noise = self.synthesize(features, labels, num_draws, generator)
        return F.normalize(raw, dim=-1), noise


class LDFSSynthesizer(Adapter):
    """Synthesise target-domain features from frozen image features (stage 1).

    Outputs, besides the wrapped model's: ``features`` (unit real, ``(B, d)``), ``synthetic``
    (``(B, K, M, d)``, unit), ``synthetic_raw`` (``arch: lads`` only: the MLP output before the
    re-normalisation), ``noise``, ``text_source`` / ``text_target`` (the noised tables from
    ``ldfs.text_noise`` when the batch carries them, else the clean ones) and, with
    ``diversity_pair``, ``synthetic_b`` / ``noise_b``.
    """

    def __init__(self, params: LDFSSynthesizerParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        source, target, names = text_tables(ctx, params.source_sets, params.domains)
        self.domain_names = names
        self.net = SynthesisNet(
            source,
            target,
            arch=params.arch,
            per_domain_net=params.per_domain_net,
            d_z=params.d_z,
            hidden_dim=params.hidden_dim,
            zero_init_last=params.zero_init_last,
            domains=names,
        )

    def _tables(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        noised = batch.get("text_features")
        if not isinstance(noised, Mapping):
            return self.net.text_source, self.net.text_target
        names = (*self.params.source_sets, *self.domain_names)
        if any(n not in noised for n in names):
            return self.net.text_source, self.net.text_target
        source = torch.stack([noised[n] for n in self.params.source_sets])
        return source, torch.stack([noised[n] for n in self.domain_names])

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        if "features" not in out:
            raise ComponentError("ldfs.synthesizer: the wrapped model returned no 'features'")
        if "label" not in batch:
            raise ComponentError("ldfs.synthesizer: the batch has no 'label' (class-conditioned)")
        features = normalize(out["features"].float())
        labels = batch["label"]
        raw, noise = self.net.synthesize(features, labels, self.params.num_draws)
        out.update(features=features, synthetic=F.normalize(raw, dim=-1), noise=noise)
        if self.params.arch == "lads":  # LADS's directional loss takes the raw MLP output
            out["synthetic_raw"] = raw
        if self.params.diversity_pair:
            out["synthetic_b"], out["noise_b"] = self.net(features, labels, self.params.num_draws)
        out["text_source"], out["text_target"] = self._tables(batch)
        return out

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return a tiny batch of unit features with labels."""
        gen = torch.Generator().manual_seed(0)
        dim = int(self.net.text_target.shape[-1])
        classes = int(self.net.text_target.shape[1])
        return {
            "image": F.normalize(torch.randn(batch_size, dim, generator=gen), dim=-1),
            "label": torch.randint(0, classes, (batch_size,), generator=gen),
        }


def save_synthesizer(net: SynthesisNet, path: str | Path) -> Path:
    """Write ``net`` (weights, text tables, architecture) to a safetensors file atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}
    metadata = {"ldfs_synthesizer": json.dumps(net.config)}
    return write_atomic(path, write=lambda tmp: save_file(tensors, str(tmp), metadata))


def load_synthesizer(path: str | Path) -> SynthesisNet:
    """Rebuild a :class:`SynthesisNet` from a file written by :func:`save_synthesizer`.

    Raises:
        WeightsError: the file is missing or was not written by ``save_synthesizer``.
    """
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"ldfs: synthesiser file {str(path)!r} does not exist; run stage 1 (ldfs.synthesizer) "
            "first, or point 'synthesizer_file' at the file it wrote (<run>/ldfs/synthesizer-"
            "<stage>.safetensors)"
        )
    with safe_open(str(path), framework="pt") as handle:
        meta = (handle.metadata() or {}).get("ldfs_synthesizer")
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    if meta is None:
        raise WeightsError(f"ldfs: {str(path)!r} is not an ldfs synthesiser file (no metadata)")
    config = json.loads(meta)
    net = SynthesisNet(tensors["text_source"], tensors["text_target"], **config)
    net.load_state_dict(tensors)
    return net
