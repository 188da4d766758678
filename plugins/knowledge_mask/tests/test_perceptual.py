"""Gradient-variance and VGG19 perceptual losses against independent implementations (§6)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from asklepios_knowledge_mask.params import GradientVarianceParams, VGGPerceptualParams
from asklepios_knowledge_mask.perceptual import GradientVariance, VGGPerceptual, gradient_variance
from asklepios_sdk import BuildContext, WeightsError
from safetensors.torch import save_file
from torchvision.models.vgg import cfgs, make_layers

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def _numpy_patch_vars(x: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    grey = 0.2989 * x[:, 0] + 0.5870 * x[:, 1] + 0.1140 * x[:, 2]
    kx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    ky = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    padded = np.pad(grey, ((0, 0), (1, 1), (1, 1)))
    h, w = grey.shape[1:]
    gx = sum(kx[a, b] * padded[:, a : a + h, b : b + w] for a in range(3) for b in range(3))
    gy = sum(ky[a, b] * padded[:, a : a + h, b : b + w] for a in range(3) for b in range(3))
    out = []
    for g in (gx, gy):
        variances = [
            g[:, i : i + patch, j : j + patch].reshape(g.shape[0], -1).var(axis=1, ddof=1)
            for i in range(0, h - patch + 1, patch)
            for j in range(0, w - patch + 1, patch)
        ]
        out.append(np.stack(variances, axis=1))
    return out[0], out[1]


def test_gradient_variance_matches_numpy() -> None:
    gen = torch.Generator().manual_seed(0)
    fake = torch.rand(2, 3, 30, 30, generator=gen) * 2 - 1
    real = torch.rand(2, 3, 30, 30, generator=gen) * 2 - 1
    vfx, vfy = _numpy_patch_vars(fake.double().numpy(), 12)
    vrx, vry = _numpy_patch_vars(real.double().numpy(), 12)
    assert vfx.shape == (2, 4)  # 2x2 patches, the last 6 pixels dropped
    expected = np.mean((vfx - vrx) ** 2) + np.mean((vfy - vry) ** 2)
    assert float(gradient_variance(fake, real)) == pytest.approx(expected, rel=1e-4)


def test_gradient_variance_properties_and_weight() -> None:
    x = (torch.rand(1, 3, 24, 24) * 2 - 1).requires_grad_(True)
    assert float(gradient_variance(x, x.detach()).detach()) == 0.0
    y = torch.rand(1, 3, 24, 24)
    base = float(gradient_variance(x.detach(), y))
    # variances scale with c^2, their squared differences with c^4
    assert float(gradient_variance(2 * x.detach(), 2 * y)) == pytest.approx(16 * base, rel=1e-5)
    loss = GradientVariance(GradientVarianceParams(), CTX)
    out = loss({"logits": x}, {"target": torch.rand(1, 3, 24, 24)})
    term = float(out.terms["gradient_variance"].detach())
    assert float(out.total.detach()) == pytest.approx(5.0 * term)
    out.total.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    features = make_layers(cfgs["E"])[:30]  # random-init VGG19 trunk: a stand-in for ImageNet
    path = tmp_path_factory.mktemp("vgg") / "vgg19.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in features.state_dict().items()}, path)
    return path, features.eval()


def test_vgg_perceptual_against_direct_computation(vgg_file: tuple[Path, torch.nn.Module]) -> None:
    path, features = vgg_file
    loss = VGGPerceptual(VGGPerceptualParams(weights_path=str(path)), CTX)
    gen = torch.Generator().manual_seed(1)
    fake = (torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    real = torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1
    out = loss({"logits": fake}, {"target": real})
    ends = [2, 7, 12, 21, 30]  # relu1_1 ... relu5_1
    weights = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    with torch.no_grad():
        expected = sum(
            w * np.mean(np.abs(features[:e](fake).numpy() - features[:e](real).numpy()))
            for w, e in zip(weights, ends, strict=True)
        )
    assert float(out.terms["vgg"].detach()) == pytest.approx(expected, rel=1e-4)
    assert float(out.total.detach()) == pytest.approx(10 * expected, rel=1e-4)
    out.total.backward()
    assert fake.grad is not None and not any(p.grad is not None for p in loss.parameters())
    loss.train()
    assert not loss.slices.training


def test_vgg_weights_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        VGGPerceptual(VGGPerceptualParams(weights_path=str(tmp_path / "missing.pth")), CTX)
    bad = tmp_path / "bad.pt"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(WeightsError, match="lacks VGG19 keys"):
        VGGPerceptual(VGGPerceptualParams(weights_path=str(bad)), CTX)
