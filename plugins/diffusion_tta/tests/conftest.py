"""Shared fixtures of the diffusion_tta tests, and the SDK conformance kit with tiny sizes."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from asklepios_sdk.testing import Conformance, Override

sys.path.insert(0, str(Path(__file__).parent))

from _tiny import save_tiny_unet

# The tensors here are tiny: one intra-op thread avoids thread hand-off costs on a shared machine.
torch.set_num_threads(1)

_KIT_DIR = Path(tempfile.mkdtemp(prefix="diffusion_tta_kit_"))
atexit.register(shutil.rmtree, _KIT_DIR, ignore_errors=True)
_MODEL_DIR = save_tiny_unet(_KIT_DIR / "diffusion")
_TINY_ADAPTER = {"model_dir": str(_MODEL_DIR), "timestep_respacing": "10", "start_step": 2}


def _tiny_source_unet(ctx):
    from asklepios_diffusion_tta.params import SourceUNetParams
    from asklepios_diffusion_tta.source_diffusion import SourceUNet

    params = SourceUNetParams(
        sample_size=16, block_out_channels=[8, 16], norm_num_groups=4, learn_sigma=True
    )
    return SourceUNet(params, ctx.replace(data=ctx.data.replace(in_channels=3)))


def _adapted_classifier(ctx):
    from asklepios_diffusion_tta.ddpm_adapter import DDPMAdapter
    from asklepios_diffusion_tta.params import DDPMAdapterParams
    from asklepios_sdk.testing import TinyBackbone

    adapter = DDPMAdapter(DDPMAdapterParams(**_TINY_ADAPTER), ctx)
    return adapter.wrap(TinyBackbone(ctx))


asklepios_conformance = Conformance(
    "asklepios_diffusion_tta.hooks",
    overrides={
        "diffusion_tta.ddpm_adapter": Override(params=_TINY_ADAPTER),
        "diffusion_tta.self_ensemble": Override(model=_adapted_classifier),
        "diffusion_tta.source_unet": Override(
            params={"block_out_channels": [8, 16], "norm_num_groups": 4, "learn_sigma": True}
        ),
        "diffusion_tta.train_source_diffusion": Override(model=_tiny_source_unet),
        "diffusion_tta.corrupted": Override(
            params={"corruptions": ["gaussian_noise", "contrast"], "severities": [1, 5]}
        ),
    },
)


@pytest.fixture(scope="session")
def retina_crop() -> np.ndarray:
    """Return a 128×128 RGB uint8 crop of scikit-image's retina photograph."""
    from skimage import data

    return np.ascontiguousarray(data.retina()[600:728, 300:428])


@pytest.fixture(scope="session")
def lesion_image() -> np.ndarray:
    """Return a 128×128 synthetic dermoscopy-like image: dark ellipse on skin tone."""
    yy, xx = np.mgrid[0:128, 0:128]
    inside = ((xx - 64) / 40.0) ** 2 + ((yy - 60) / 28.0) ** 2 <= 1.0
    skin = np.array([224, 172, 150], dtype=np.float64)
    lesion = np.array([92, 58, 44], dtype=np.float64)
    rng = np.random.default_rng(0)
    image = np.where(inside[..., None], lesion, skin) + rng.normal(0, 6, (128, 128, 3))
    return np.clip(image, 0, 255).astype(np.uint8)
