"""Video metrics of Fundus2Video (§9): PSNR, SSIM, LPIPS and FVD with explicit value ranges.

Generated and real videos are ``(B, M, 3, H, W)`` in ``[-1, 1]``. By default every metric sees
them mapped to the standard ``[0, 1]`` range and FVD is one Fréchet distance over all evaluated
videos. ``value_range: faithful`` reproduces the released code: PSNR/SSIM on the ``[-1, 1]``
tensors with a peak of 1 (PSNR exactly ``20·log10 2`` dB lower), I3D fed ``[-1, 1]`` as if it were
``[0, 1]``, and FVD per video over clip lengths 10..M (NaN below 10 frames, dropped from the mean).

References:
    Zhang et al., "Fundus2Video", MICCAI 2024, arXiv 2408.15217; metrics code from
    ``JunyaoHu/common_metrics_on_video_quality``; Unterthiner et al., "Towards Accurate Generative
    Models of Video: A New Metric & Challenges" (FVD), 2018; Wang et al., SSIM, TIP 2004.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, Evaluator, WeightsError
from torch import Tensor

from asklepios_knowledge_mask.params import VideoMetricsParams

__all__ = [
    "VideoMetrics",
    "frechet_distance",
    "psnr_per_frame",
    "ssim_valid",
]

PSNR_CAP = 100.0


def psnr_per_frame(fake: Tensor, real: Tensor, data_range: float = 1.0) -> Tensor:
    """Return per-frame PSNR ``20·log10(range/√MSE)`` of ``(N, C, H, W)`` frames, capped at 100 dB.

    Uses ``torchmetrics``; frames whose MSE is below 1e-10 get the cap (as the original code).
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio

    value = peak_signal_noise_ratio(
        fake, real, data_range=data_range, reduction="none", dim=(1, 2, 3)
    )
    mse = (fake - real).pow(2).flatten(1).mean(1)
    return torch.where(mse < 1e-10, torch.full_like(value, PSNR_CAP), value)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim_valid(fake: Tensor, real: Tensor, data_range: float = 1.0) -> Tensor:
    """Return per-frame SSIM of ``(N, C, H, W)`` frames on the "valid" region, channel-averaged.

    Gaussian window 11, σ = 1.5, ``C1 = (0.01·range)²``, ``C2 = (0.03·range)²``; statistics only
    where the whole window fits (a 5-pixel border is dropped), as the original's OpenCV code.
    (torchmetrics' SSIM reflect-pads the border instead, hence this implementation.)
    """
    if min(fake.shape[-2:]) < 11:
        raise ComponentError(
            f"knowledge_mask.video_metrics: SSIM needs frames of at least 11x11 pixels (its "
            f"Gaussian window), got {tuple(fake.shape[-2:])}"
        )
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    channels = fake.shape[1]
    window = _gaussian_window().to(fake.device)[None, None].expand(channels, 1, 11, 11)
    x, y = fake.double(), real.double()

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2)
    )
    return ssim_map.flatten(1).mean(1).to(fake.dtype)


def frechet_distance(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """Return the Fréchet distance of Gaussians fitted to two feature sets ``(N, D)``.

    ``||μ1 − μ2||² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½)``; with a single sample in either set the
    covariance term is skipped and the squared L2 distance of the means remains (as StyleGAN-V).
    """
    from scipy import linalg

    mu1, mu2 = feats1.mean(0), feats2.mean(0)
    value = float(np.sum((mu1 - mu2) ** 2))
    if len(feats1) < 2 or len(feats2) < 2:
        return value
    s1, s2 = np.cov(feats1, rowvar=False), np.cov(feats2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    return value + float(np.trace(s1 + s2 - 2 * np.real(covmean)))


def _i3d_preprocess(videos: Tensor, size: int) -> Tensor:
    """Resize so the shorter side is ``size``, centre-crop, ``(v − 0.5)·2``; ``(B, C, T, S, S)``."""
    b, t, c, h, w = videos.shape
    scale = size / min(h, w)
    frames = F.interpolate(
        videos.reshape(b * t, c, h, w),
        size=(max(size, round(h * scale)), max(size, round(w * scale))),
        mode="bilinear",
        align_corners=False,
    )
    top = (frames.shape[-2] - size) // 2
    left = (frames.shape[-1] - size) // 2
    frames = frames[..., top : top + size, left : left + size]
    frames = (frames - 0.5) * 2
    return frames.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4).contiguous()


class VideoMetrics(Evaluator):
    """Score generated FFA videos against real ones: PSNR, SSIM, optional LPIPS and FVD.

    ``update(outputs, batch)``: ``outputs['video']`` (generated) and ``batch['video']`` (real),
    both ``(B, M, 3, H, W)`` in ``[-1, 1]``. PSNR/SSIM/LPIPS are averaged over the frames of a
    video, then over videos. FVD: see the module docstring.
    """

    name: ClassVar[str] = "video"
    higher_is_better = True
    key_directions: ClassVar[dict[str, bool]] = {}
    full_state_update = False

    # metric states (add_state below), declared so that they are not typed Tensor | Module;
    # the feature lists hold one tensor per update until torchmetrics concatenates them on sync
    psnr_sum: Tensor
    ssim_sum: Tensor
    lpips_sum: Tensor
    videos: Tensor
    fvd_sum: Tensor
    fvd_count: Tensor
    feats_real: list[Tensor]
    feats_fake: list[Tensor]

    def __init__(self, params: VideoMetricsParams, ctx: BuildContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.params = params
        p = self.params
        # lower is better for the keys this instance computes (psnr and ssim: higher)
        directions = {"lpips": False} if p.lpips else {}
        if p.i3d_path is not None:
            directions["fvd"] = False
        # the SDK types key_directions as a ClassVar, but which keys exist depends on params
        self.key_directions = directions  # type: ignore[misc]
        self.i3d: Any = None
        if p.i3d_path is not None:
            path = Path(p.i3d_path).expanduser()
            if not path.is_file():
                raise WeightsError(
                    f"knowledge_mask.video_metrics: I3D file {str(path)!r} does not exist. FVD "
                    "needs StyleGAN-V's TorchScript I3D (i3d_torchscript.pt); download it yourself "
                    "and set 'i3d_path', or set i3d_path: null to skip FVD"
                )
            with warnings.catch_warnings():
                # StyleGAN-V publishes its I3D as TorchScript; torch marks the loader deprecated
                warnings.simplefilter("ignore", FutureWarning)
                self.i3d = torch.jit.load(str(path), map_location="cpu").eval()
        self.lpips_net: Any = None
        if p.lpips:
            self.lpips_net = _build_lpips()
        self.add_state("psnr_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("ssim_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("lpips_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("videos", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fvd_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("fvd_count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("feats_real", [], dist_reduce_fx="cat")
        self.add_state("feats_fake", [], dist_reduce_fx="cat")

    def _features(self, videos: Tensor) -> Tensor:
        x = _i3d_preprocess(videos, self.params.i3d_size)
        param = next(iter(self.i3d.parameters()), None)
        if param is not None:
            x = x.to(param.device)
        with torch.no_grad():
            # StyleGAN-V's detector kwargs: the input is already resized and scaled
            feats = self.i3d(x, rescale=False, resize=False, return_features=True)
        return feats.detach().double().cpu()

    def update(self, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
        """Add a batch of generated and real videos."""
        if "video" not in outputs or "video" not in batch:
            raise ComponentError(
                "knowledge_mask.video_metrics needs outputs['video'] (generated, from "
                "knowledge_mask.generator in evaluation) and batch['video'] (real frames)"
            )
        fake, real = outputs["video"].detach().float(), batch["video"].detach().float()
        if fake.shape != real.shape or fake.ndim != 5:
            raise ComponentError(
                "knowledge_mask.video_metrics: generated and real videos must both be "
                f"(B, M, 3, H, W); got {tuple(fake.shape)} and {tuple(real.shape)}"
            )
        faithful = self.params.value_range == "faithful"
        if not faithful:
            fake, real = (fake + 1) / 2, (real + 1) / 2
        b, m = fake.shape[:2]
        frames_f, frames_r = fake.flatten(0, 1), real.flatten(0, 1)
        psnr = psnr_per_frame(frames_f, frames_r).view(b, m).double().mean(1)
        ssim = ssim_valid(frames_f, frames_r).view(b, m).double().mean(1)
        self.psnr_sum += psnr.sum()
        self.ssim_sum += ssim.sum()
        self.videos += b
        if self.lpips_net is not None:
            # standard: [0,1] -> [-1,1] as LPIPS expects; faithful: the code's 2x-1 on [-1,1]
            lp = self.lpips_net(frames_f * 2 - 1, frames_r * 2 - 1)
            self.lpips_sum += lp.double().view(b, m).mean(1).sum()
        if self.i3d is None:
            return
        if not faithful:
            self.feats_fake.append(self._features(fake))
            self.feats_real.append(self._features(real))
            return
        for index in range(b):
            if m < self.params.min_fvd_frames:
                continue  # NaN in the original: such videos drop out of the mean
            values = []
            for length in range(self.params.min_fvd_frames, m + 1):
                f1 = self._features(real[index : index + 1, :length]).numpy()
                f2 = self._features(fake[index : index + 1, :length]).numpy()
                values.append(frechet_distance(f1, f2))
            self.fvd_sum += float(np.mean(values))
            self.fvd_count += 1

    def compute(self) -> dict[str, Tensor]:
        """Return ``psnr``, ``ssim`` and, when configured, ``lpips`` and ``fvd``."""
        videos = max(float(self.videos), 1.0)
        result = {
            "psnr": (self.psnr_sum / videos).float(),
            "ssim": (self.ssim_sum / videos).float(),
        }
        if self.lpips_net is not None:
            result["lpips"] = (self.lpips_sum / videos).float()
        if self.i3d is not None:
            if self.params.value_range == "faithful":
                count = float(self.fvd_count)
                value = float(self.fvd_sum) / count if count else math.nan
            else:
                real = _cat(self.feats_real)
                fake = _cat(self.feats_fake)
                value = frechet_distance(real.numpy(), fake.numpy()) if len(real) else math.nan
            result["fvd"] = torch.tensor(value, dtype=torch.float32)
        return result

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 4
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Return generated and real 3-frame videos of 16×16 pixels."""
        gen = torch.Generator().manual_seed(0)
        real = torch.rand(batch_size, 3, 1, 16, 16, generator=gen).expand(-1, -1, 3, -1, -1)
        noise = 0.1 * torch.randn(batch_size, 3, 1, 16, 16, generator=gen)
        fake = (real + noise).clamp(0, 1)
        return {"video": fake * 2 - 1}, {"video": real * 2 - 1}


def _cat(state: list[Tensor] | Tensor) -> Tensor:
    if isinstance(state, Tensor):
        return state
    return torch.cat(state) if state else torch.zeros(0, 0, dtype=torch.float64)


def _build_lpips() -> Any:
    """Build torchmetrics' LPIPS-AlexNet from locally cached weights only (never downloads)."""
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
    from torchvision.models import AlexNet_Weights

    url = AlexNet_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if not cached.is_file():
        raise WeightsError(
            f"knowledge_mask.video_metrics: LPIPS needs torchvision's AlexNet weights at "
            f"{str(cached)!r} (from {url}); put the file there or set lpips: false"
        )
    metric = LearnedPerceptualImagePatchSimilarity(net_type="alex", reduction="mean")
    net = metric.net

    def per_frame(fake: Tensor, real: Tensor) -> Tensor:
        with torch.no_grad():
            return net(fake, real).flatten()

    return per_frame
