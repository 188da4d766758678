"""Spec §6.6: synthetic lesions, a corruption that hurts, the full adapter and the K = 2 rule."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from _tiny import save_tiny_unet
from asklepios_diffusion_tta.corruptions import corrupt
from asklepios_diffusion_tta.ddpm_adapter import DDPMAdapter
from asklepios_diffusion_tta.params import DDPMAdapterParams, SelfEnsembleParams
from asklepios_diffusion_tta.self_ensemble import SelfEnsemble
from asklepios_sdk import BuildContext
from torch import nn


def _lesions(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dark disk (class 0) or dark square (class 1) on noisy skin tone, 32×32 RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    images, labels = [], []
    for i in range(n):
        label = i % 2
        cy, cx = rng.integers(12, 20, size=2)
        r = rng.integers(5, 8)
        mask = (
            (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
            if label == 0
            else (np.abs(yy - cy) <= r - 1) & (np.abs(xx - cx) <= r - 1)
        )
        skin = np.array([0.88, 0.67, 0.59]) + rng.normal(0, 0.03, (32, 32, 3))
        image = np.where(mask[..., None], np.array([0.35, 0.22, 0.17]), skin)
        images.append(np.clip(image, 0, 1))
        labels.append(label)
    x = torch.tensor(np.stack(images), dtype=torch.float32).permute(0, 3, 1, 2)
    return x, torch.tensor(labels)


class _Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(4),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 64, 2),
        )

    def forward(self, batch):
        return {"logits": self.net(batch["image"]), "features": batch["image"].mean((2, 3))}


@pytest.mark.slow
def test_synthetic_lesion_smoke(tmp_path) -> None:
    x_train, y_train = _lesions(128, seed=0)
    x_test, y_test = _lesions(64, seed=1)
    model = _Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(60):
        idx = torch.arange(step * 32, step * 32 + 32) % 128
        loss = nn.functional.cross_entropy(model({"image": x_train[idx]})["logits"], y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        clean = (model({"image": x_test})["logits"].argmax(1) == y_test).float().mean()
        noisy_x = corrupt(x_test, "gaussian_noise", 5, torch.Generator().manual_seed(0))
        noisy = (model({"image": noisy_x})["logits"].argmax(1) == y_test).float().mean()
    assert clean > 0.9 and noisy < clean, (float(clean), float(noisy))

    model_dir = save_tiny_unet(tmp_path / "diffusion", sample_size=32)
    params = DDPMAdapterParams(model_dir=str(model_dir), timestep_respacing="10", start_step=4)
    adapter = DDPMAdapter(params, BuildContext())
    ensemble = (
        SelfEnsemble(SelfEnsembleParams(mode="sum"), BuildContext())
        .wrap(adapter.wrap(model))
        .eval()
    )
    start = time.perf_counter()
    adapted = adapter.adapt(noisy_x[:8])
    assert time.perf_counter() - start < 60
    model_space = adapted * 2 - 1
    assert adapted.shape == noisy_x[:8].shape
    assert float(model_space.min()) >= -1 - 1e-6 and float(model_space.max()) <= 1 + 1e-6
    with torch.no_grad():
        out = ensemble({"image": noisy_x[:8]})
    p_o, p_a = out["logits_source"].softmax(1), out["logits_adapted"].softmax(1)
    confident = torch.where(p_o.amax(1) >= p_a.amax(1), p_o.argmax(1), p_a.argmax(1))
    assert torch.equal(out["logits"].argmax(1), confident)
