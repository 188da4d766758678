"""Run the SDK conformance kit over plugin ``core`` (every built-in component).

The file-backed datasets get tiny real files written once into a temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from asklepios_sdk.testing import Conformance, Override

_ROOT = Path(tempfile.mkdtemp(prefix="asklepios-core-conformance-"))


def _write_files(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = ["path,label"]
    for cls in ("a", "b", "c"):
        for i in range(6):
            path = root / "folder" / cls / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
            rows.append(f"folder/{cls}/{i}.png,{cls}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    arrays = {}
    for split, n in (("train", 12), ("val", 6), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.arange(n).reshape(-1, 1) % 3
    np.savez(root / "tiny.npz", **arrays)
    lines = ["x1,x2,y"] + [f"{rng.normal():.4f},{rng.normal():.4f},{i % 2}" for i in range(30)]
    (root / "table.csv").write_text("\n".join(lines) + "\n")


_write_files(_ROOT)
_SPLIT = {"val_fraction": 0.34, "test_fraction": 0.34}
_DDP = "2 gloo ranks in a torchrun run: tests/core/test_distributed.py"
# A tiny random-init open_clip architecture (no weights exist offline).
_TINY_CLIP = {
    "model": "tiny",
    "random_init": True,
    "model_cfg": {
        "embed_dim": 8,
        "vision_cfg": {
            "image_size": 16,
            "layers": 1,
            "width": 16,
            "patch_size": 8,
            "head_width": 8,
        },
        "text_cfg": {
            "context_length": 12,
            "vocab_size": 49408,
            "width": 16,
            "heads": 2,
            "layers": 1,
        },
    },
}

asklepios_conformance = Conformance(
    "asklepios.builtins.hooks",
    plugin_id="core",
    overrides={
        "core.resize": Override(params={"size": 12}),
        "core.random_resized_crop": Override(params={"size": 12}),
        "core.center_crop": Override(params={"size": 12}),
        "core.timm": Override(params={"model_name": "resnet10t"}),
        "core.image_folder": Override(params={"root": str(_ROOT / "folder"), **_SPLIT}),
        "core.csv": Override(params={"path": str(_ROOT / "manifest.csv"), **_SPLIT}),
        "core.medmnist": Override(params={"path": str(_ROOT / "tiny.npz")}),
        "core.tabular": Override(params={"path": str(_ROOT / "table.csv"), "target": "y"}),
        # The 2-rank metric sync is exercised by tests/core/test_distributed.py (torchrun).
        "core.classification": Override(skip={"evaluator-ddp": _DDP}),
        "core.open_clip": Override(params=_TINY_CLIP),
        "core.clip_features": Override(
            params={"clip": _TINY_CLIP, "cache_dir": str(_ROOT / "features")}
        ),
    },
)
