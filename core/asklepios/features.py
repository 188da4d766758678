"""Feature cache: encode a dataset split once with a frozen backbone, then train on the features.

Two-stage pipelines that keep the encoder frozen (linear probes, CLIP feature synthesis) spend
nearly all their time re-encoding the same images. :func:`cached_features` encodes a split once and
stores the features, with the labels and every other numeric per-sample field, in a safetensors file
named by a sha256 of what determines them: the backbone (id and params), its weights (sha256 of the
file), the input transform and the dataset (id, split, fingerprint). Writes are atomic
(:func:`asklepios_sdk.io.write_atomic`), so an interrupted run never leaves a truncated entry.

The dataset wrapper ``core.clip_features`` applies this to every split of a dataset with the
built-in ``core.open_clip`` backbone and adds the text features of named prompt sets for the class
names to the data facts (``extras["text_features"][name]``, a ``C x d`` table), so components that
need class text embeddings (zero-shot heads, language-guided feature synthesis) find them there.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, DatasetWrapper
from asklepios_sdk.io import write_atomic
from torch import Tensor

from asklepios.builtins.open_clip import OpenCLIPBackbone
from asklepios.builtins.params import ClipFeaturesParams

__all__ = [
    "ClipFeatures",
    "FeatureCache",
    "FeatureSplit",
    "cached_features",
    "extract_features",
    "feature_cache_key",
    "file_digest",
]

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """Return the sha256 of a file (memoised per path, size and modification time)."""
    path = Path(path).expanduser().resolve()
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns)
    if memo not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _DIGESTS[memo] = digest.hexdigest()
    return _DIGESTS[memo]


def feature_cache_key(
    *, backbone: Mapping[str, Any], weights: str | None, transform: Any, dataset: Mapping[str, Any]
) -> str:
    """Return the cache key: sha256 of (backbone, weights, transform, dataset), canonical JSON.

    Args:
        backbone: component id and params of the encoder.
        weights: digest of the weights (``None`` for a seeded random init).
        transform: description of the input transform applied before the encoder.
        dataset: dataset id, split name and fingerprint.
    """
    payload = {"backbone": backbone, "weights": weights, "transform": transform, "dataset": dataset}
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureCache:
    """A directory of safetensors entries, one per key, written atomically.

    Args:
        root: the cache directory (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def path(self, key: str) -> Path:
        """Return the file of entry ``key``."""
        return self.root / f"{key}.safetensors"

    def load(self, key: str) -> tuple[dict[str, Tensor], dict[str, str]] | None:
        """Return ``(tensors, metadata)`` of entry ``key``; ``None`` if absent or unreadable."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
                metadata = dict(handle.metadata() or {})
        except Exception:  # a corrupt entry is recomputed, never trusted
            return None
        return tensors, metadata

    def save(self, key: str, tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> Path:
        """Write entry ``key`` atomically and return its path."""
        from safetensors.torch import save_file

        cpu = {name: value.contiguous().cpu() for name, value in tensors.items()}

        def write(tmp: Path) -> None:
            save_file(cpu, str(tmp), dict(metadata))

        return write_atomic(self.path(key), write=write)


def extract_features(
    encode: Callable[[Tensor], Tensor],
    dataset: torch.utils.data.Dataset,
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> dict[str, Tensor]:
    """Encode every sample's ``image`` and keep its numeric per-sample fields (``label``, ...).

    Samples are batched by a ``DataLoader`` (``num_workers`` processes) in dataset order.

    Returns:
        ``{"features": (N, d), "label": (N,), ...}``, features in float32 on the CPU.
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    features: list[Tensor] = []
    fields: dict[str, list[Tensor]] = {}
    with torch.no_grad():
        for batch in loader:
            images = torch.as_tensor(batch["image"]).to(device)
            features.append(encode(images).float().cpu())
            for key, value in batch.items():
                # one number per sample (label, domain, time, ...); images and text are dropped
                if key != "image" and isinstance(value, Tensor) and value.dim() == 1:
                    fields.setdefault(key, []).append(value)
    if not features:
        raise ComponentError("extract_features: the split is empty; nothing to encode")
    out = {"features": torch.cat(features)}
    out.update({key: torch.cat(values) for key, values in fields.items()})
    return out


def cached_features(
    cache: FeatureCache,
    key: str,
    compute: Callable[[], dict[str, Tensor]],
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Tensor]:
    """Return the entry ``key`` from ``cache``, computing and storing it on a miss."""
    hit = cache.load(key)
    if hit is not None:
        return hit[0]
    tensors = compute()
    cache.save(key, tensors, metadata or {})
    return tensors


class FeatureSplit(torch.utils.data.Dataset):
    """A split of cached features: item ``i`` is ``{"image": features[i], "label": ..., ...}``."""

    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        self.tensors = {("image" if k == "features" else k): v for k, v in tensors.items()}
        self.size = int(self.tensors["image"].shape[0])

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[index] for key, value in self.tensors.items()}


def _fingerprint(inner: Any, split: str, data: torch.utils.data.Dataset) -> dict[str, Any]:
    """Describe a split without reading it all: type, size, labels and two sample images."""
    digest = hashlib.sha256()
    labels = inner.labels(split)
    if labels is not None:
        digest.update(np.ascontiguousarray(np.asarray(labels)).tobytes())
    size = len(data)  # type: ignore[arg-type]
    for index in {0, size - 1} if size else set():
        image = torch.as_tensor(data[index]["image"])
        digest.update(image.detach().cpu().contiguous().numpy().tobytes())
    kind = type(inner)
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "size": size,
        "hash": digest.hexdigest(),
    }


class ClipFeatures(DatasetWrapper):
    """Replace each split by cached ``core.open_clip`` image features; add prompt text features.

    Args:
        params: the validated :class:`ClipFeaturesParams`.
        ctx: the build context (unused beyond the seed of a random-init encoder).
    """

    def __init__(self, params: ClipFeaturesParams, ctx: BuildContext | None = None) -> None:
        self.params = params
        self.seed = int(ctx.seed) if ctx is not None else 0
        self.cache = FeatureCache(params.cache_dir)
        self._encoder: OpenCLIPBackbone | None = None
        self._splits: dict[str, FeatureSplit] = {}
        self._text: dict[str, Tensor] | None = None

    def _backbone_key(self) -> dict[str, Any]:
        clip = self.params.clip
        weights = file_digest(clip.pretrained_file) if clip.pretrained_file else clip.pretrained
        spec = clip.model_dump(mode="json", exclude={"frozen", "inputs", "class_prompts"})
        return {"id": "core.open_clip", "params": spec, "weights": weights, "seed": self.seed}

    def _encoder_for(self, facts: DataFacts) -> OpenCLIPBackbone:
        if self._encoder is None:
            torch.manual_seed(self.seed)  # a random-init encoder is reproducible from the seed
            encoder = OpenCLIPBackbone(
                self.params.clip.model_copy(update={"inputs": "image"}), BuildContext(data=facts)
            )
            self._encoder = encoder.to(self.params.device).eval()
        return self._encoder

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name not in self._splits:
            data = self.inner.split(name)
            backbone = self._backbone_key()
            dataset = {
                "id": self.params.dataset_key or _fingerprint(self.inner, name, data),
                "split": name,
            }
            transform = {"preprocess": self.params.clip.preprocess}
            key = feature_cache_key(
                backbone=backbone, weights=backbone["weights"], transform=transform, dataset=dataset
            )

            def compute() -> dict[str, Tensor]:
                encoder = self._encoder_for(self.inner.facts())
                return extract_features(
                    encoder.encode_image,
                    data,
                    batch_size=self.params.batch_size,
                    device=self.params.device,
                    num_workers=self.params.num_workers,
                )

            meta = {"split": name, "backbone": json.dumps(backbone, default=str)}
            self._splits[name] = FeatureSplit(cached_features(self.cache, key, compute, meta))
        return self._splits[name]

    def text_features(self) -> dict[str, Tensor]:
        """Return ``{set name: (C, d)}`` text features of the prompt sets (cached)."""
        if self._text is None:
            facts = self.inner.facts()
            names = facts.class_names or tuple(f"class {i}" for i in range(facts.num_classes or 0))
            if not names:
                raise ComponentError(
                    "core.clip_features: the wrapped dataset reports neither class_names nor "
                    "num_classes, so prompt sets cannot be encoded"
                )
            backbone = self._backbone_key()
            key = feature_cache_key(
                backbone=backbone,
                weights=backbone["weights"],
                transform="text",
                dataset={"class_names": list(names), "prompt_sets": self.params.prompt_sets},
            )

            def compute() -> dict[str, Tensor]:
                encoder = self._encoder_for(facts)
                with torch.no_grad():
                    return {
                        set_name: encoder.encode_prompts(templates, names).cpu()
                        for set_name, templates in self.params.prompt_sets.items()
                    }

            self._text = cached_features(self.cache, key, compute, {"kind": "text"})
        return self._text

    def facts(self) -> DataFacts:
        inner = self.inner.facts()
        text = self.text_features()
        width = int(next(iter(text.values())).shape[1])
        extras = dict(inner.extras)
        extras["text_features"] = {
            name: tuple(tuple(row) for row in table.tolist()) for name, table in text.items()
        }
        extras["feature_backbone"] = "core.open_clip"
        return inner.replace(num_features=width, image_size=None, in_channels=None, extras=extras)
