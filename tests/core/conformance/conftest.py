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
_OC = "needs local weights or a large random model; covered by tests/core/test_open_clip.py"
_CF = "wraps an open_clip model; covered by tests/core/test_features.py"
_DDP = "2 gloo ranks in a torchrun run: tests/core/test_distributed.py"
_OC = "needs local weights or a large random model; covered by tests/core/test_open_clip.py"
_CF = "wraps an open_clip model; covered by tests/core/test_features.py"

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
        # Built-ins added by the open_clip/feature-cache work; their own tests cover them.
        "core.open_clip": Override(
            skip=dict.fromkeys(("build", "pickle", "forward-backward"), _OC)
        ),
        "core.clip_features": Override(skip=dict.fromkeys(("pickle", "dataset-splits"), _CF)),
    },
)
