"""Spec §12 check 6: metric conventions, SSIM/PSNR references, Fréchet distance and FVD."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from asklepios_knowledge_mask.metrics import (
    VideoMetrics,
    frechet_distance,
    psnr_per_frame,
    ssim_valid,
)
from asklepios_knowledge_mask.params import VideoMetricsParams
from asklepios_sdk import BuildContext, WeightsError
from scipy import linalg, ndimage
from torch import nn

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def _numpy_ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM of one channel on the valid region, written from Wang et al. with scipy filters."""
    coords = np.arange(11) - 5
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.correlate(x, window, mode="constant")[5:-5, 5:-5]

    mu1, mu2 = blur(a), blur(b)
    s11, s22, s12 = blur(a * a) - mu1**2, blur(b * b) - mu2**2, blur(a * b) - mu1 * mu2
    ssim = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))
    return float(ssim.mean())


def test_ssim_matches_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 24, 24))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    got = ssim_valid(torch.from_numpy(a).float(), torch.from_numpy(b).float())
    for n in range(2):
        ref = np.mean([_numpy_ssim(a[n, c], b[n, c]) for c in range(3)])
        assert float(got[n]) == pytest.approx(ref, abs=1e-5)


def test_psnr_conventions_on_constant_images() -> None:
    real01 = torch.full((1, 3, 16, 16), 0.25)
    fake01 = torch.full((1, 3, 16, 16), 0.35)
    standard = 20 * math.log10(1 / math.sqrt(0.1**2))  # hand-computed: 20 dB
    assert float(psnr_per_frame(fake01, real01)) == pytest.approx(standard, abs=1e-4)
    metric = VideoMetrics(VideoMetricsParams(value_range="faithful"), CTX)
    video_real = (real01 * 2 - 1)[:, None]
    video_fake = (fake01 * 2 - 1)[:, None]
    metric.update({"video": video_fake}, {"video": video_real})
    faithful = float(metric.compute()["psnr"])
    assert faithful == pytest.approx(standard - 20 * math.log10(2), abs=1e-4)
    metric = VideoMetrics(VideoMetricsParams(), CTX)
    metric.update({"video": video_fake}, {"video": video_real})
    assert float(metric.compute()["psnr"]) == pytest.approx(standard, abs=1e-4)


def test_identical_videos_hit_the_cap_and_ssim_one() -> None:
    video = torch.rand(2, 4, 3, 16, 16) * 2 - 1
    for value_range in ("standard", "faithful"):
        metric = VideoMetrics(VideoMetricsParams(value_range=value_range), CTX)
        metric.update({"video": video}, {"video": video.clone()})
        result = metric.compute()
        assert float(result["psnr"]) == 100.0
        assert float(result["ssim"]) == pytest.approx(1.0, abs=1e-6)
        metric.reset()
        assert float(metric.videos) == 0


def test_frechet_distance_gaussians_and_single_sample() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 16))
    y = rng.standard_normal((2000, 16)) + 0.5
    analytic = 16 * 0.5**2  # identical covariances: only the mean term, 16 · 0.25 = 4
    assert frechet_distance(x, y) == pytest.approx(analytic, abs=0.35)
    # the sample estimate against the formula on the sample statistics
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    ref = np.sum((x.mean(0) - y.mean(0)) ** 2) + np.trace(
        s1 + s2 - 2 * np.real(linalg.sqrtm(s1 @ s2))
    )
    assert frechet_distance(x, y) == pytest.approx(ref, rel=1e-6)
    a, b = rng.standard_normal((1, 16)), rng.standard_normal((1, 16))
    assert frechet_distance(a, b) == pytest.approx(float(np.sum((a - b) ** 2)))


class TinyI3D(nn.Module):
    """A stand-in detector with StyleGAN-V's call signature (B, C, T, H, W) -> (B, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 8)

    def forward(
        self,
        x: torch.Tensor,
        rescale: bool = False,
        resize: bool = False,
        return_features: bool = True,
    ) -> torch.Tensor:
        stats = torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)
        return self.proj(stats)


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    with warnings.catch_warnings():  # StyleGAN-V's detector format is TorchScript
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(TinyI3D()).save(str(path))
    return path


def _load(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path))


def _videos(n: int, frames: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, frames, 3, 16, 16, generator=gen) * 2 - 1


def test_dataset_level_fvd_over_all_videos(i3d_file: Path) -> None:
    metric = VideoMetrics(VideoMetricsParams(i3d_path=str(i3d_file), i3d_size=16), CTX)
    real, fake = _videos(4, 5, 0), _videos(4, 5, 1)
    metric.update({"video": fake[:2]}, {"video": real[:2]})
    metric.update({"video": fake[2:]}, {"video": real[2:]})
    detector = _load(i3d_file)

    def feats(v: torch.Tensor) -> np.ndarray:
        x = ((v + 1) / 2 - 0.5) * 2  # [-1,1] -> [0,1] -> StyleGAN-V scaling; 16 px needs no resize
        return detector(x.permute(0, 2, 1, 3, 4)).detach().double().numpy()

    expected = frechet_distance(feats(real), feats(fake))
    assert float(metric.compute()["fvd"]) == pytest.approx(expected, rel=1e-4)


def test_per_video_fvd_in_faithful_mode(i3d_file: Path) -> None:
    params = VideoMetricsParams(i3d_path=str(i3d_file), i3d_size=16, value_range="faithful")
    short = VideoMetrics(params, CTX)
    short.update({"video": _videos(1, 9, 0)}, {"video": _videos(1, 9, 1)})
    assert math.isnan(float(short.compute()["fvd"]))  # fewer than 10 frames: dropped
    metric = VideoMetrics(params, CTX)
    real, fake = _videos(1, 11, 2), _videos(1, 11, 3)
    metric.update({"video": fake}, {"video": real})
    detector = _load(i3d_file)
    per_length = []
    for length in (10, 11):
        f_real = detector(((real[:, :length] - 0.5) * 2).permute(0, 2, 1, 3, 4)).detach().numpy()
        f_fake = detector(((fake[:, :length] - 0.5) * 2).permute(0, 2, 1, 3, 4)).detach().numpy()
        per_length.append(np.sum((f_real - f_fake) ** 2))
    assert float(metric.compute()["fvd"]) == pytest.approx(np.mean(per_length), rel=1e-4)


def test_missing_weight_files_raise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WeightsError, match="i3d_torchscript"):
        VideoMetrics(VideoMetricsParams(i3d_path=str(tmp_path / "nope.pt")), CTX)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError, match="AlexNet"):
        VideoMetrics(VideoMetricsParams(lpips=True), CTX)


def test_key_directions_follow_the_configured_metrics(i3d_file: Path) -> None:
    assert VideoMetrics(VideoMetricsParams(), CTX).key_directions == {}
    metric = VideoMetrics(VideoMetricsParams(i3d_path=str(i3d_file), i3d_size=16), CTX)
    assert not metric.is_higher_better("fvd") and metric.is_higher_better("psnr")
