"""Spec fixtures (§3, §8.1) and small numpy references shared by the test modules."""

from __future__ import annotations

import numpy as np
import torch
from asklepios_sdk import BuildContext, DataFacts

COUNTS = np.array([500.0, 100.0, 20.0, 5.0])
Z = np.array(
    [
        [2.0, 0.5, -1.0, 0.3],
        [0.1, 0.2, 1.5, -0.7],
        [-0.4, 1.1, 0.0, 0.9],
        [1.2, -0.3, 0.4, 0.8],
        [0.0, 0.0, 0.0, 0.0],
        [3.0, -2.0, 1.0, 0.5],
    ]
)
Y = np.array([0, 2, 3, 1, 3, 0])

F1 = np.array(
    [
        [1, 0.5, -0.2, 0.3],
        [0.2, -1, 0.4, 0],
        [0.9, 0.4, -0.1, 0.2],
        [-0.5, 0.3, 0.8, -0.6],
        [0.1, 0.1, 0.1, 0.1],
        [0, -0.9, 0.5, 0.2],
    ]
)
FY = np.array([0, 1, 0, 2, 2, 1])
F2 = F1[:, ::-1] * 0.5 + 0.1
CENTERS = np.array([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 1, -0.5]], dtype=float)
QUERIES = np.array([[0.5, 0.5, 0, 0.1], [-0.2, 0.1, 0.9, -0.4]])
TNORM_W = np.array([[1, 2, 0, 0.5], [0.3, -0.2, 0.1, 0], [0, 1, -1, 2]])


def make_ctx(counts=COUNTS, epochs: int = 10, **extra) -> BuildContext:
    """Return a build context whose training split has ``counts``."""
    counts = tuple(int(c) for c in counts)
    labels = tuple(np.repeat(np.arange(len(counts)), counts).tolist())
    facts = DataFacts(
        num_samples=sum(counts),
        num_classes=len(counts),
        class_counts=counts,
        labels=labels,
        **extra,
    )
    return BuildContext(data=facts, epochs=epochs)


def outputs(z=Z, **more) -> dict[str, torch.Tensor]:
    """Return model outputs with float32 logits that require grad."""
    out = {"logits": torch.tensor(z, dtype=torch.float32, requires_grad=True)}
    for key, value in more.items():
        out[key] = torch.tensor(value, dtype=torch.float32, requires_grad=True)
    return out


def batch(y=Y, **more) -> dict[str, torch.Tensor]:
    """Return a batch with integer labels."""
    out = {"label": torch.tensor(y, dtype=torch.long)}
    out.update(more)
    return out


# ---- numpy references written from the spec's formulas (never calling the plugin) ----


def np_logsumexp(z: np.ndarray, axis: int = 1) -> np.ndarray:
    m = z.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def np_ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-sample CE = logsumexp(z) − z_y."""
    return np_logsumexp(z) - z[np.arange(len(y)), y]


def np_weighted_ce(z: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    ce = np_ce(z, y)
    if w is None:
        return float(ce.mean())
    return float((w[y] * ce).sum() / w[y].sum())


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_cb(n: np.ndarray, beta: float = 0.9999) -> np.ndarray:
    raw = np.array([(1 - beta) / (1 - beta**k) for k in n])
    return raw * len(n) / raw.sum()


def write_split_lists(root, counts=(5, 3, 2), size=6, pickle_map=False):
    """Write tiny PNGs and MONICA-style split lists under ``root``; return the lists folder."""
    from pathlib import Path

    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    mapping = {}
    splits = {"train": [], "val": [], "test": []}
    for label, count in enumerate(counts):
        for split, n in (("train", count), ("val", 1), ("test", 2)):
            for i in range(n):
                name = f"images/{split}_{label}_{i}.png"
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / name)
                mapping[name] = label
                splits[split].append(name)
    lists = root / "lists"
    lists.mkdir(exist_ok=True)
    for split, items in splits.items():
        np.save(lists / f"{split}.npy", np.asarray(items))
    if pickle_map:
        np.save(lists / "dic.npy", mapping, allow_pickle=True)
    with open(lists / "labels.csv", "w") as handle:
        handle.write("path,label\n")
        for key, value in mapping.items():
            handle.write(f"{key},{value}\n")
    return root, lists
