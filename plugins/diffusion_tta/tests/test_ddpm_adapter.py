"""Schedule, low-pass filter and guidance checks of the DDA adapter (spec §6.1–6.3)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _tiny import save_tiny_unet
from asklepios_diffusion_tta._diffusion import (
    DiffusionSchedule,
    linear_betas,
    lowpass,
    space_timesteps,
)
from asklepios_diffusion_tta.ddpm_adapter import (
    DDPMAdapter,
    guidance_distance,
    guidance_gradient,
    guided_reverse_sampling,
    unet_evaluations,
)
from asklepios_diffusion_tta.params import DDPMAdapterParams
from asklepios_sdk import BuildContext, ComponentError, WeightsError
from pydantic import ValidationError

SCHEDULE = DiffusionSchedule.respaced(linear_betas(), "100")


def test_respacing_indices_and_alpha_bar() -> None:
    assert SCHEDULE.timestep_map.tolist() == [round(i * 999 / 99) for i in range(100)]
    assert SCHEDULE.timestep_map[50] == 505
    assert SCHEDULE.alphas_cumprod[50] == pytest.approx(0.07394, abs=1e-4)
    base = np.cumprod(1 - linear_betas())
    np.testing.assert_allclose(SCHEDULE.alphas_cumprod, base[SCHEDULE.timestep_map], rtol=1e-12)
    assert space_timesteps(1000, "10,10") == [
        0,
        55,
        111,
        166,
        222,
        277,
        333,
        388,
        444,
        499,
        500,
        555,
        611,
        666,
        722,
        777,
        833,
        888,
        944,
        999,
    ]


def test_q_sample_moments() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.full((200_000,), 0.6, dtype=torch.float64)
    xt = SCHEDULE.q_sample(x, 50, torch.randn(200_000, generator=gen, dtype=torch.float64))
    # the mean is checked to four standard errors, the std to 1 %
    assert float(xt.mean()) == pytest.approx(0.2719 * 0.6, abs=4 * 0.9623 / np.sqrt(200_000))
    assert float(xt.std()) == pytest.approx(0.9623, rel=0.01)


@pytest.fixture(scope="module")
def retina_grey() -> torch.Tensor:
    from skimage import data
    from skimage.color import rgb2gray
    from skimage.transform import resize

    grey = resize(rgb2gray(data.retina()), (256, 256), anti_aliasing=True)
    return torch.from_numpy(grey)[None, None]


def _high_energy(x: torch.Tensor, factor: int) -> float:
    spectrum = np.abs(np.fft.fft2(x[0, 0].numpy())) ** 2
    freqs = np.fft.fftfreq(x.shape[-1])
    fy, fx = np.meshgrid(freqs, freqs, indexing="ij")
    mask = (np.abs(fx) > 1 / (2 * factor)) | (np.abs(fy) > 1 / (2 * factor))
    return float(spectrum[mask].sum())


def test_lowpass_properties(retina_grey: torch.Tensor) -> None:
    assert lowpass(retina_grey, 4).shape == retina_grey.shape
    constant = torch.full((1, 3, 256, 256), 0.37, dtype=torch.float64)
    assert float((lowpass(constant, 4) - constant).abs().max()) < 1e-6
    noise = torch.randn(
        1, 1, 256, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert _high_energy(lowpass(noise, 4), 4) <= 0.05 * _high_energy(noise, 4)
    once = lowpass(retina_grey, 4)
    assert float((lowpass(once, 4) - once).norm() / once.norm()) < 0.05


def _keys(d: float) -> float:
    a = abs(d)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2 if a <= 2 else 0.0


def _resize_right_1d(v: np.ndarray, out: int, scale: float) -> np.ndarray:
    """Transcribe ``resize_right.resize`` along one axis (cubic, antialiased, zero padding)."""
    eps = float(np.finfo(np.float32).eps)
    support = 4 if scale >= 1 else 4 / scale
    result = np.zeros(out)
    for o in range(out):
        centre = o / scale + (len(v) - 1) / 2 - (out - 1) / (2 * scale)
        first = int(np.ceil(centre - support / 2 - eps))
        taps = range(first, first + int(np.ceil(support - eps)))
        stretch = min(scale, 1.0)
        weights = [stretch * _keys(stretch * (centre - j)) for j in taps]
        values = [v[j] if 0 <= j < len(v) else 0.0 for j in taps]
        result[o] = np.dot(weights, values) / sum(weights)
    return result


def _dda_lowpass(x: np.ndarray, factor: int) -> np.ndarray:
    """DDA's φ_D: resize(resize(x, 1/D, int(H/D)), D, H) along H, then W, for every channel."""
    h, w = x.shape[-2:]

    def along(a: np.ndarray, axis: int, out: int, scale: float) -> np.ndarray:
        return np.apply_along_axis(_resize_right_1d, axis, a, out, scale)

    small = along(along(x, -2, int(h / factor), 1 / factor), -1, int(w / factor), 1 / factor)
    return along(along(small, -2, h, float(factor)), -1, w, float(factor))


@pytest.mark.parametrize(("shape", "factor"), [((1, 1, 20, 28), 4), ((2, 3, 37, 30), 2)])
def test_resize_right_lowpass_matches_dda(shape: tuple[int, ...], factor: int) -> None:
    x = np.random.default_rng(0).uniform(-1, 1, shape)
    got = lowpass(torch.from_numpy(x), factor, "resize_right").numpy()
    np.testing.assert_allclose(got, _dda_lowpass(x, factor), atol=1e-12)


def test_resize_right_zero_pads_borders_and_differs_from_bicubic(retina_grey) -> None:
    constant = torch.full((1, 1, 64, 64), 0.5, dtype=torch.float64)
    filtered = lowpass(constant, 4, "resize_right")
    torch.testing.assert_close(filtered[..., 16:-16, 16:-16], constant[..., 16:-16, 16:-16])
    assert float(filtered[..., 0, 0]) < 0.45  # zero padding pulls the corner towards 0
    # the README's figures: on the retina photograph in [-1, 1] the default differs by about
    # 16 % (relative L2) in the 8-pixel border band and about 1 % inside
    x = retina_grey * 2 - 1
    default, dda = lowpass(x, 4), lowpass(x, 4, "resize_right")
    band = torch.zeros(256, 256, dtype=torch.bool)
    band[:8], band[-8:], band[:, :8], band[:, -8:] = True, True, True, True
    border = float((default - dda)[..., band].norm() / dda[..., band].norm())
    inside = float((default - dda)[..., ~band].norm() / dda[..., ~band].norm())
    assert 0.05 < border < 0.3
    assert inside < 0.03


def _linear_eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.5 * x


def _unguided(eps_fn, schedule, x_ref, start, gen) -> torch.Tensor:
    """Plain ancestral DDPM, written from the formulas (reference for w = 0)."""

    def randn() -> torch.Tensor:
        return torch.randn(x_ref.shape, generator=gen, dtype=x_ref.dtype)

    ac = schedule.alphas_cumprod
    prev = schedule.alphas_cumprod_prev
    x = np.sqrt(ac[start]) * x_ref + np.sqrt(1 - ac[start]) * randn()
    for t in range(start, -1, -1):
        eps = eps_fn(x, torch.full((x.shape[0],), int(schedule.timestep_map[t])))
        x0 = ((x - np.sqrt(1 - ac[t]) * eps) / np.sqrt(ac[t])).clamp(-1, 1)
        beta = schedule.betas[t]
        mean = (beta * np.sqrt(prev[t]) * x0 + (1 - prev[t]) * np.sqrt(1 - beta) * x) / (1 - ac[t])
        var = schedule.posterior_variance
        log_var = np.log(var[1]) if t == 0 else np.log(var[t])
        z = randn()
        x = mean + (np.exp(0.5 * log_var) * z if t > 0 else 0)
    return x


def test_zero_scale_is_the_unguided_sampler() -> None:
    x_ref = (
        torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        * 1.6
        - 0.8
    )
    schedule = DiffusionSchedule.respaced(linear_betas(), "20")
    got = guided_reverse_sampling(
        _linear_eps,
        schedule,
        x_ref,
        start_step=10,
        scale=0.0,
        generator=torch.Generator().manual_seed(4),
    )
    plain = guided_reverse_sampling(
        _linear_eps,
        schedule,
        x_ref,
        start_step=10,
        guidance="none",
        generator=torch.Generator().manual_seed(4),
    )
    assert torch.equal(got, plain)
    expected = _unguided(_linear_eps, schedule, x_ref, 10, torch.Generator().manual_seed(4))
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_guidance_step_is_a_descent_step() -> None:
    gen = torch.Generator().manual_seed(2)
    x_ref = torch.rand(3, 3, 32, 32, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    x_t = 0.3 * torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64)
    ref_lp = lowpass(x_ref, 4)
    for reduction in ("sample", "batch"):
        d0, grad = guidance_gradient(_linear_eps, SCHEDULE, x_t, 40, ref_lp, 4, reduction)
        assert float(grad.abs().max()) > 0
        d1, _ = guidance_gradient(
            _linear_eps, SCHEDULE, x_t - 1e-3 * grad, 40, ref_lp, 4, reduction
        )
        assert float(d1) < float(d0)


def test_batch_norm_gradient_is_rescaled_per_sample_gradient() -> None:
    gen = torch.Generator().manual_seed(3)
    x_ref = torch.rand(3, 3, 32, 32, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    x_t = 0.3 * torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64)
    ref_lp = lowpass(x_ref, 4)
    _, g_batch = guidance_gradient(_linear_eps, SCHEDULE, x_t, 30, ref_lp, 4, "batch")
    _, g_sample = guidance_gradient(_linear_eps, SCHEDULE, x_t, 30, ref_lp, 4, "sample")
    x0 = SCHEDULE.predict_x0(x_t, 30, 0.5 * x_t).clamp(-1, 1)
    residual = ref_lp - lowpass(x0, 4)
    per = residual.flatten(1).norm(dim=1)
    ratio = (per / residual.norm()).view(-1, 1, 1, 1)
    torch.testing.assert_close(g_batch, g_sample * ratio, atol=1e-5, rtol=0)


def test_oracle_denoiser_gives_zero_guidance() -> None:
    gen = torch.Generator().manual_seed(5)
    x0 = torch.rand(3, 3, 32, 32, generator=gen, dtype=torch.float64) * 1.6 - 0.8
    x_t = torch.randn(3, 3, 32, 32, generator=gen, dtype=torch.float64)
    t = 25
    ac = SCHEDULE.alphas_cumprod[t]

    def oracle(x: torch.Tensor, _t: torch.Tensor) -> torch.Tensor:
        return (x - np.sqrt(ac) * x0) / np.sqrt(1 - ac)

    d, grad = guidance_gradient(oracle, SCHEDULE, x_t, t, lowpass(x0, 4), 4)
    assert float(d) < 1e-10 and float(grad.abs().max()) < 1e-8
    assert float(guidance_distance(lowpass(x0, 4), x0, 4, "batch")) < 1e-12


def test_ilvr_and_offset_run_and_stay_in_range() -> None:
    x_ref = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(6)) * 2 - 1
    schedule = DiffusionSchedule.respaced(linear_betas(), "10")
    for kwargs in ({"guidance": "ilvr", "ilvr_stop": 1}, {"start_index_offset": 1}):
        out = guided_reverse_sampling(
            _linear_eps,
            schedule,
            x_ref,
            start_step=5,
            generator=torch.Generator().manual_seed(0),
            **kwargs,
        )
        assert out.shape == x_ref.shape and torch.isfinite(out).all()
    with pytest.raises(ComponentError, match="start_step"):
        guided_reverse_sampling(_linear_eps, schedule, x_ref, start_step=10)


def test_params_validation_and_unet_evaluation_counts() -> None:
    with pytest.raises(ValidationError, match="power of 2"):
        DDPMAdapterParams(downsample_factor=3)
    assert unet_evaluations(DDPMAdapterParams()) == (51, 51)
    assert unet_evaluations(DDPMAdapterParams(start_index_offset=1)) == (50, 50)
    assert unet_evaluations(DDPMAdapterParams(guidance="ilvr")) == (51, 0)


class _MeanClassifier(torch.nn.Module):
    def forward(self, batch):
        feats = batch["image"].mean(dim=(2, 3))
        return {"logits": torch.cat([feats[:, :1], -feats[:, :1]], dim=1), "features": feats}


@pytest.mark.slow
def test_adapter_loads_local_diffusers_dir_and_adapts(tmp_path) -> None:
    save_tiny_unet(tmp_path / "diffusion", out_channels=6)
    params = DDPMAdapterParams(
        model_dir="diffusion",
        timestep_respacing="10",
        start_step=4,
        pixel_mean=(0.5,),
        pixel_std=(0.25,),
        reencode_jpeg_quality=75,
    )
    adapter = DDPMAdapter(params, BuildContext(output_dir=str(tmp_path)))
    assert isinstance(adapter, DDPMAdapter)
    model = adapter.wrap(_MeanClassifier()).eval()
    batch = adapter.example_batch(BuildContext())
    with torch.inference_mode():
        out = model(batch)
    assert out["logits"].shape == (2, 2) and torch.isfinite(out["logits"]).all()
    adapted = adapter.adapt(batch["image"])
    pixels = adapted * 0.25 + 0.5
    assert adapted.shape == batch["image"].shape
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    model.train()
    torch.testing.assert_close(model(batch)["logits"], _MeanClassifier()(batch)["logits"])
    assert not any(p.requires_grad for p in adapter.eps_model.parameters())


def test_missing_model_dir_names_the_paths(tmp_path) -> None:
    with pytest.raises(WeightsError, match="train_source_diffusion"):
        DDPMAdapter(DDPMAdapterParams(model_dir="nowhere"), BuildContext(output_dir=str(tmp_path)))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(WeightsError, match="UNet2DModel"):
        DDPMAdapter(DDPMAdapterParams(model_dir=str(tmp_path / "bad")), BuildContext())
