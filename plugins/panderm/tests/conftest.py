"""Switch on the SDK conformance kit for every panderm component, on tiny models and data."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _tiny import TINY, panderm_release, perturbed_state
from asklepios_sdk import DataFacts
from asklepios_sdk.testing import Conformance, Override

_DIR = Path(tempfile.mkdtemp(prefix="panderm-kit-"))


def _tiny_vit(ctx):
    from asklepios_panderm.params import PanDermViTParams
    from asklepios_panderm.vit import PanDermViT

    return PanDermViT(PanDermViTParams(**TINY), ctx)


def _checkpoint_file() -> str:
    model = _tiny_vit(__import__("_tiny").tiny_ctx())
    path = _DIR / "panderm_tiny.pth"
    torch.save(panderm_release(perturbed_state(model.encoder)), path)
    return str(path)


def _csv_file() -> str:
    from _tiny import write_digits_csv

    return str(write_digits_csv(_DIR / "digits", per_split=(12, 4, 4)))


SEGMENTATION = DataFacts(task="segmentation", num_classes=2, in_channels=3, image_size=(32, 32))

asklepios_conformance = Conformance(
    "asklepios_panderm.hooks",
    overrides={
        "panderm.vit": Override(params=TINY),
        "panderm.upernet": Override(
            params={**TINY, "depth": 4, "out_indices": [0, 1, 2, 3], "channels": 16},
            data=SEGMENTATION,
        ),
        "panderm.checkpoint": Override(params={"path": _checkpoint_file()}, model=_tiny_vit),
        "panderm.tta": Override(model=_tiny_vit, params={"resize": 32, "crop": 32}),
        "panderm.derm_csv": Override(params={"csv": _csv_file()}),
        "panderm.finetune": Override(params={"warmup_epochs": 0}),
        "panderm.seg_transform": Override(params={"size": 16, "augment": True}),
        "panderm.pixel_ce": Override(data=SEGMENTATION),
        "panderm.seg_metrics": Override(data=SEGMENTATION),
    },
)
