"""Dataset ``ldfs.toy_clip_space``: a toy CLIP feature space with a named unseen domain (§6).

``d = 64``, ``C`` classes. Dims 0-15 carry "colour" class evidence ``a_c``, dims 16-31 "shape"
evidence ``b_c``, dims 32-47 the domain style; ``a_c, b_c, s_src, s_k`` have i.i.d.
``N(0, 1/16)`` entries on their 16 dims. Source images ``normalise(a_y + b_y + s_src + eta n)``,
target images ``normalise(b_y + s_k + eta n)`` (colour removed), ``n ~ N(0, I/16)``. Texts:
``t^s_c = normalise(a_c + b_c + s_src + g)``, ``t^k_c = normalise(b_c + s_k + g)``, plain class
text ``classes`` (LADS's "a photo of a {c}") ``normalise(a_c + b_c + g)``, ``g`` a fixed
modality-gap vector on dims 48-63 of norm 0.5. No weights are needed.
"""

from __future__ import annotations

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset

from asklepios_ldfs.params import ToyClipSpaceParams

__all__ = ["ToyClipSpace", "make_toy_space"]

BLOCK = 16


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_toy_space(params: ToyClipSpaceParams) -> dict[str, np.ndarray]:
    """Return the space's vectors: colour ``a``, shape ``b``, styles, gap and text tables."""
    if params.num_classes < 2:
        raise ComponentError("ldfs.toy_clip_space: needs at least 2 classes")
    rng = np.random.default_rng(params.seed)
    d, c, k = 4 * BLOCK, params.num_classes, len(params.target_domains)
    std = 1.0 / np.sqrt(BLOCK)
    a = np.zeros((c, d))
    b = np.zeros((c, d))
    a[:, :BLOCK] = rng.normal(0, std, (c, BLOCK))
    b[:, BLOCK : 2 * BLOCK] = rng.normal(0, std, (c, BLOCK))
    styles = np.zeros((1 + k, d))
    styles[:, 2 * BLOCK : 3 * BLOCK] = rng.normal(0, std, (1 + k, BLOCK))
    gap = np.zeros(d)
    direction = rng.normal(size=BLOCK)
    gap[3 * BLOCK :] = params.gap_norm * direction / np.linalg.norm(direction)
    text = {"source": _normalise(a + b + styles[0] + gap), "classes": _normalise(a + b + gap)}
    for index, name in enumerate(params.target_domains, start=1):
        text[name] = _normalise(b + styles[index] + gap)
    return {
        "a": a,
        "b": b,
        "styles": styles,
        "gap": gap,
        **{f"text/{n}": t for n, t in text.items()},
    }


def _images(
    space: dict[str, np.ndarray],
    params: ToyClipSpaceParams,
    rng: np.random.Generator,
    domain: int,
    per_class: int,
) -> tuple[np.ndarray, np.ndarray]:
    c = params.num_classes
    labels = np.repeat(np.arange(c), per_class)
    noise = rng.normal(0, 1.0 / np.sqrt(BLOCK), (labels.size, 4 * BLOCK))
    colour = space["a"][labels] if domain == 0 else 0.0
    raw = colour + space["b"][labels] + space["styles"][domain] + params.eta * noise
    return _normalise(raw).astype(np.float32), labels


class _Split(torch.utils.data.Dataset):
    def __init__(self, features: np.ndarray, labels: np.ndarray, domains: np.ndarray) -> None:
        self.features = torch.from_numpy(features)
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.domains = torch.from_numpy(domains.astype(np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": self.features[index],
            "label": self.labels[index],
            "domain": self.domains[index],
        }


class ToyClipSpace(Dataset):
    """Generate the toy CLIP feature space: source train/val, source + unseen test.

    Samples are ``{"image": f (d,), "label", "domain"}`` (domain 0 = source, ``k`` = the k-th
    target). The facts carry ``extras["text_features"]`` (``source`` and one set per target
    domain) and ``extras["domains"]``.
    """

    def __init__(self, params: ToyClipSpaceParams, ctx: BuildContext | None = None) -> None:
        self.params = params
        self.space = make_toy_space(params)
        rng = np.random.default_rng([params.seed, 1])
        train = _images(self.space, params, rng, 0, params.samples_per_class)
        val = _images(self.space, params, rng, 0, params.eval_per_class)
        self.splits = {
            "train": _Split(*train, np.zeros_like(train[1])),
            "val": _Split(*val, np.zeros_like(val[1])),
        }
        parts = [
            _images(self.space, params, rng, k, params.eval_per_class)
            for k in range(1 + len(params.target_domains))
        ]
        self.splits["test"] = _Split(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([np.full(p[1].size, k) for k, p in enumerate(parts)]),
        )

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self._split(name)

    def labels(self, name: str) -> np.ndarray:
        return self._split(name).labels.numpy()

    def _split(self, name: str) -> _Split:
        if name not in self.splits:
            raise ComponentError(
                f"ldfs.toy_clip_space: no split {name!r}; have {sorted(self.splits)}"
            )
        return self.splits[name]

    def text_features(self) -> dict[str, np.ndarray]:
        """Return the toy text tables ``{set name: (C, d)}``."""
        return {key[5:]: value for key, value in self.space.items() if key.startswith("text/")}

    def facts(self) -> DataFacts:
        train = self.splits["train"]
        c = self.params.num_classes
        text = {
            name: tuple(tuple(float(v) for v in row) for row in table)
            for name, table in self.text_features().items()
        }
        return DataFacts(
            task="classification",
            num_samples=len(train),
            num_classes=c,
            class_counts=tuple(int(n) for n in np.bincount(train.labels.numpy(), minlength=c)),
            class_names=tuple(f"class{i}" for i in range(c)),
            labels=tuple(int(v) for v in train.labels.tolist()),
            num_features=4 * BLOCK,
            extras={
                "text_features": text,
                "domains": ("source", *self.params.target_domains),
            },
        )
