"""Shared fixtures of the diffusion_tta tests: small real and synthetic images."""

from __future__ import annotations

import numpy as np
import pytest


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
