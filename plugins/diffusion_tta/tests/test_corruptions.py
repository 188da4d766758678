"""Corruptions against numpy/scipy/skimage/PIL references, severity and seed properties."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from asklepios_diffusion_tta import _imagenet_c as ops
from asklepios_diffusion_tta.corruptions import (
    CORRUPTIONS,
    Corruption,
    corrupt,
    corrupt_uint8,
    resolve_corruptions,
)
from asklepios_diffusion_tta.params import CorruptionParams
from asklepios_sdk import BuildContext, ComponentError
from PIL import Image
from scipy import ndimage


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255


def _to_numpy(x: torch.Tensor) -> np.ndarray:
    return x[0].permute(1, 2, 0).numpy()


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def textures(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("frost")
    rng = np.random.default_rng(1)
    for i, shape in enumerate([(90, 140, 3), (200, 120, 3)]):
        array = (rng.random(shape) * 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"frost{i}.png")
    return str(folder)


def test_parameter_table_matches_the_spec() -> None:
    p = ops.PARAMS
    assert p["gaussian_noise"] == [0.08, 0.12, 0.18, 0.26, 0.38]
    assert p["shot_noise"] == [60, 25, 12, 5, 3]
    assert p["impulse_noise"] == [0.03, 0.06, 0.09, 0.17, 0.27]
    assert p["defocus_blur"][0] == (3, 0.1) and p["defocus_blur"][4] == (10, 0.5)
    assert p["glass_blur"][3] == (1.1, 3, 2)
    assert p["motion_blur"] == [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]
    # numpy's float arange keeps 1.11 in the first set, as in the reference.
    assert [len(z) for z in p["zoom_blur"]] == [12, 16, 11, 13, 11]
    assert p["snow"][0] == (0.1, 0.3, 3, 0.5, 10, 4, 0.8)
    assert p["snow"][4] == (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)
    assert p["frost"] == [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]
    assert p["fog"][4] == (3.0, 1.4)
    assert p["brightness"] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert p["contrast"] == [0.4, 0.3, 0.2, 0.1, 0.05]
    assert p["elastic_transform"][4] == pytest.approx(30.0)
    assert p["pixelate"] == [0.6, 0.5, 0.4, 0.3, 0.25]
    assert p["jpeg_compression"] == [25, 18, 15, 10, 7]
    assert len(CORRUPTIONS) == 15


def test_gaussian_noise_statistics() -> None:
    x = torch.full((1, 3, 128, 128), 0.5, dtype=torch.float64)
    for severity, sigma in [(1, 0.08), (2, 0.12)]:
        y = corrupt(x, "gaussian_noise", severity, _gen(), quantize=False)
        assert float((y - x).std()) == pytest.approx(sigma, rel=0.02)
        assert abs(float((y - x).mean())) < 3 * sigma / math.sqrt(y.numel())


def test_shot_noise_is_poisson() -> None:
    x = torch.full((1, 3, 128, 128), 0.4, dtype=torch.float64)
    for severity, rate in [(1, 60), (3, 12)]:
        y = corrupt(x, "shot_noise", severity, _gen(), quantize=False)
        counts = (y * rate).numpy()
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)
        assert counts.mean() == pytest.approx(0.4 * rate, rel=0.01)
        assert counts.var() == pytest.approx(0.4 * rate, rel=0.04)


def test_impulse_noise_fractions() -> None:
    x = torch.full((1, 3, 128, 128), 0.5, dtype=torch.float64)
    y = corrupt(x, "impulse_noise", 4, _gen(), quantize=False)
    assert float((y == 1).double().mean()) == pytest.approx(0.17 / 2, rel=0.05)
    assert float((y == 0).double().mean()) == pytest.approx(0.17 / 2, rel=0.05)
    assert set(np.unique(y.numpy())) <= {0.0, 0.5, 1.0}


def _reference_disk(radius: float, alias_blur: float) -> np.ndarray:
    span = 8 if radius <= 8 else radius
    ksize = 3 if radius <= 8 else 5
    yy, xx = np.mgrid[-span : span + 1, -span : span + 1]
    disk = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    taps = np.arange(ksize) - ksize // 2
    g = np.exp(-(taps**2) / (2 * alias_blur**2))
    g /= g.sum()
    disk = ndimage.correlate1d(disk, g, axis=0, mode="mirror")
    return ndimage.correlate1d(disk, g, axis=1, mode="mirror")


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_defocus_blur_matches_scipy(retina_crop: np.ndarray, severity: int) -> None:
    radius, alias = ops.PARAMS["defocus_blur"][severity - 1]
    kernel = _reference_disk(radius, alias)
    np.testing.assert_allclose(ops.disk_kernel(radius, alias), kernel, atol=1e-12)
    x = retina_crop / 255.0
    expected = np.stack(
        [ndimage.correlate(x[..., c], kernel, mode="mirror") for c in range(3)], axis=-1
    )
    got = _to_numpy(corrupt(_to_tensor(retina_crop), "defocus_blur", severity, quantize=False))
    np.testing.assert_allclose(got, np.clip(expected, 0, 1), atol=1e-9)


def _reference_motion_blur(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    width = 2 * radius + 1
    kernel = np.exp(-(np.arange(width) ** 2) / (2 * sigma**2))
    kernel /= kernel.sum()
    out = np.zeros_like(x)
    for i in range(width):
        dy = -math.ceil(i * math.sin(math.radians(angle)) - 0.5)
        dx = -math.ceil(i * math.cos(math.radians(angle)) - 0.5)
        rows = np.clip(np.arange(x.shape[0]) - dy, 0, x.shape[0] - 1)
        cols = np.clip(np.arange(x.shape[1]) - dx, 0, x.shape[1] - 1)
        out += kernel[i] * x[rows][:, cols]
    return out


@pytest.mark.parametrize("angle", [-40.0, 0.0, 17.5, 44.0])
def test_motion_blur_matches_numpy(retina_crop: np.ndarray, angle: float) -> None:
    x = retina_crop / 255.0
    expected = _reference_motion_blur(x, 15, 8, angle)
    got = ops.motion_blur_with_angle(_to_tensor(retina_crop), 15, 8, torch.tensor([angle]))
    np.testing.assert_allclose(_to_numpy(got), expected, atol=1e-9)


def test_zoom_blur_matches_scipy(lesion_image: np.ndarray) -> None:
    x = lesion_image / 255.0
    factors = ops.PARAMS["zoom_blur"][2]
    out = x.copy()
    for z in factors:
        ch = math.ceil(x.shape[0] / z)
        top = (x.shape[0] - ch) // 2
        crop = x[top : top + ch, top : top + ch]
        out += ndimage.zoom(crop, (z, z, 1), order=1)[: x.shape[0], : x.shape[1]]
    expected = np.clip(out / (len(factors) + 1), 0, 1)
    got = _to_numpy(corrupt(_to_tensor(lesion_image), "zoom_blur", 3, quantize=False))
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("severity", [1, 5])
def test_brightness_matches_skimage_hsv(retina_crop: np.ndarray, severity: int) -> None:
    from skimage import color

    x = retina_crop / 255.0
    hsv = color.rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + ops.PARAMS["brightness"][severity - 1], 0, 1)
    expected = color.hsv2rgb(hsv)
    got = _to_numpy(corrupt(_to_tensor(retina_crop), "brightness", severity, quantize=False))
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_contrast_matches_formula(lesion_image: np.ndarray) -> None:
    x = lesion_image / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    expected = np.clip((x - means) * 0.1 + means, 0, 1)
    got = _to_numpy(corrupt(_to_tensor(lesion_image), "contrast", 4, quantize=False))
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_gaussian_blur_matches_scipy(retina_crop: np.ndarray) -> None:
    x = retina_crop / 255.0
    expected = ndimage.gaussian_filter(x, sigma=(3, 3, 0), mode="nearest")
    got = _to_numpy(corrupt(_to_tensor(retina_crop), "gaussian_blur", 3, quantize=False))
    np.testing.assert_allclose(got, expected, atol=1e-9)


@pytest.mark.parametrize("severity", [1, 5])
def test_pixelate_matches_pil(retina_crop: np.ndarray, severity: int) -> None:
    c = ops.PARAMS["pixelate"][severity - 1]
    pil = Image.fromarray(retina_crop)
    small = pil.resize((int(128 * c), int(128 * c)), Image.BOX)
    expected = np.asarray(small.resize((128, 128), Image.NEAREST)).astype(np.int64)
    got = corrupt_uint8(retina_crop, "pixelate", severity).astype(np.int64)
    assert np.abs(got - expected).max() <= 1


def test_jpeg_matches_pil(lesion_image: np.ndarray) -> None:
    buffer = io.BytesIO()
    Image.fromarray(lesion_image).save(buffer, "JPEG", quality=15)
    expected = np.asarray(Image.open(buffer)).astype(np.int64)
    got = corrupt_uint8(lesion_image, "jpeg_compression", 3).astype(np.int64)
    assert np.abs(got - expected).mean() < 1.0


def test_elastic_with_zero_alpha_is_identity(retina_crop: np.ndarray) -> None:
    x = _to_tensor(retina_crop)
    np.testing.assert_allclose(ops.elastic_transform(x, 0.0, _gen()).numpy(), x.numpy(), atol=1e-9)


def test_plasma_fractal_range_and_seed() -> None:
    like = torch.zeros(1)
    a = ops.plasma_fractal(2, 64, 1.5, _gen(3), like)
    b = ops.plasma_fractal(2, 64, 1.5, _gen(3), like)
    assert torch.equal(a, b)
    assert torch.allclose(a.amin(dim=(1, 2)), torch.zeros(2))
    assert torch.allclose(a.amax(dim=(1, 2)), torch.ones(2))
    with pytest.raises(ValueError, match="power-of-two"):
        ops.plasma_fractal(1, 48, 1.5, _gen(), like)


@pytest.mark.slow
@pytest.mark.parametrize("image_name", ["retina_crop", "lesion_image"])
def test_all_corruptions_shapes_and_monotone_severity(
    request: pytest.FixtureRequest, image_name: str, textures: str
) -> None:
    image = request.getfixturevalue(image_name)
    mad: dict[str, list[float]] = {}
    for name in (*CORRUPTIONS, "gaussian_blur"):
        mad[name] = []
        for severity in range(1, 6):
            out = corrupt_uint8(image, name, severity, seed=7, frost_texture_dir=textures)
            assert out.dtype == np.uint8 and out.shape == image.shape, name
            mad[name].append(float(np.abs(out.astype(float) - image).mean()))
    for name in ("gaussian_noise", "shot_noise", "impulse_noise", "contrast", "gaussian_blur"):
        assert all(np.diff(mad[name]) >= 0), (name, mad[name])
    assert all(v > 0 for values in mad.values() for v in values)


def test_seeded_runs_are_reproducible(lesion_image: np.ndarray, textures: str) -> None:
    for name in CORRUPTIONS:
        a = corrupt_uint8(lesion_image, name, 3, seed=5, frost_texture_dir=textures)
        b = corrupt_uint8(lesion_image, name, 3, seed=5, frost_texture_dir=textures)
        assert np.array_equal(a, b), name
    a = corrupt_uint8(lesion_image, "gaussian_noise", 3, seed=5)
    assert not np.array_equal(a, corrupt_uint8(lesion_image, "gaussian_noise", 3, seed=6))


def test_uint8_batches_keep_their_scale(lesion_image: np.ndarray) -> None:
    batch = torch.from_numpy(lesion_image).permute(2, 0, 1)[None]
    out = corrupt(batch, "contrast", 5)
    assert out.dtype == torch.uint8
    expected = corrupt_uint8(lesion_image, "contrast", 5)
    assert np.array_equal(out[0].permute(1, 2, 0).numpy(), expected)
    with pytest.raises(ComponentError, match="uint8"):
        corrupt(batch.long(), "contrast", 5)


def test_grey_images_and_batches() -> None:
    x = torch.rand(3, 1, 40, 40, generator=_gen())
    for name in ("snow", "brightness", "fog", "motion_blur", "jpeg_compression"):
        assert corrupt(x, name, 2, _gen()).shape == x.shape


def test_frost_needs_textures_and_bad_inputs_are_named() -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ComponentError, match="frost_texture_dir"):
        corrupt(x, "frost", 1)
    with pytest.raises(ComponentError, match="severity"):
        corrupt(x, "contrast", 6)
    with pytest.raises(ComponentError, match="unknown corruption"):
        corrupt(x, "rain", 1)
    with pytest.raises(ComponentError, match="shape"):
        corrupt(x[0], "contrast", 1)
    assert resolve_corruptions("medmnist_derma")[0] == "derma_pixelate"


def test_medmnist_preset_runs(lesion_image: np.ndarray) -> None:
    for name in resolve_corruptions("medmnist_derma"):
        out = corrupt_uint8(lesion_image, name, 5, seed=1)
        assert out.shape == lesion_image.shape and not np.array_equal(out, lesion_image)
    bright = corrupt_uint8(lesion_image, "derma_brightness_down", 5)
    expected = np.round(lesion_image * 0.5)
    assert np.abs(bright - expected).max() <= 1


def test_transform_is_seeded_per_index_and_maps_value_range() -> None:
    params = CorruptionParams(
        corruption="imagenet_c_extra", severity="random", seed=3, value_range=(-1.0, 1.0)
    )
    transform = Corruption(
        params.model_copy(update={"corruption": "gaussian_noise"}), BuildContext()
    )
    sample = transform.example_sample(BuildContext())
    sample["image"] = sample["image"] * 2 - 1
    a = transform(sample)
    b = transform(dict(sample))
    assert torch.equal(a["image"], b["image"])
    assert float(a["image"].min()) >= -1 and float(a["image"].max()) <= 1
    other = transform({**sample, "index": 1})
    assert not torch.equal(a["image"], other["image"])
    with pytest.raises(ComponentError, match="severity"):
        Corruption(CorruptionParams(severity=0), BuildContext())


@pytest.mark.slow
def test_module_does_not_import_imagecorruptions() -> None:
    code = (
        "import sys, asklepios_diffusion_tta.corruptions; "
        "assert 'imagecorruptions' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_quantisation_truncates_like_numpy_uint8(lesion_image: np.ndarray) -> None:
    # imagecorruptions returns np.uint8(np.clip((x/255 - m)*c + m, 0, 1)*255): truncation
    x = lesion_image / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    expected = np.uint8(np.clip((x - means) * 0.05 + means, 0, 1) * 255).astype(np.int64)
    got = corrupt_uint8(lesion_image, "contrast", 5).astype(np.int64)
    assert np.abs(got - expected).mean() < 0.01
    floats = corrupt(_to_tensor(lesion_image), "contrast", 5)
    np.testing.assert_array_equal(_to_numpy(floats) * 255, got)


def _sequential_glass_scan(image: np.ndarray, dy: np.ndarray, dx: np.ndarray, delta: int):
    """Transcribe imagecorruptions 1.1.2's glass-blur loop (one round, given the draws)."""
    x = image.copy()
    height, width = x.shape[:2]
    for h in range(height - delta, delta, -1):
        for w in range(width - delta, delta, -1):
            h_prime, w_prime = h + dy[h, w], w + dx[h, w]
            x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return x


@pytest.mark.parametrize(("delta", "shape"), [(1, (13, 17)), (2, (20, 16)), (4, (24, 31))])
def test_glass_scramble_equals_the_sequential_scan(delta: int, shape: tuple[int, int]) -> None:
    gen = _gen(delta)
    image = torch.rand(2, 3, *shape, generator=gen, dtype=torch.float64)
    dy = torch.randint(-delta, delta, (2, *shape), generator=gen)
    dx = torch.randint(-delta, delta, (2, *shape), generator=gen)
    got = ops.glass_scramble(image, dy, dx, delta)
    for i in range(2):
        expected = _sequential_glass_scan(
            _to_numpy(image[i : i + 1]), dy[i].numpy(), dx[i].numpy(), delta
        )
        np.testing.assert_array_equal(_to_numpy(got[i : i + 1]), expected)
    if delta > 1:  # pixels travel along chains: the result is not a permutation
        values = np.sort(got[0, 0].flatten().numpy())
        assert not np.array_equal(values, np.sort(image[0, 0].flatten().numpy()))


def test_frost_draws_from_the_first_five_textures(tmp_path) -> None:
    for i in range(6):  # frost1 .. frost6, each one flat colour level (10, 20, ..., 60)
        Image.fromarray(np.full((40, 40, 3), 10 * (i + 1), np.uint8)).save(
            tmp_path / f"frost{i + 1}.png"
        )
    black = torch.zeros(300, 3, 32, 32)
    out = corrupt(black, "frost", 1, _gen(), frost_texture_dir=tmp_path, quantize=False)
    levels = np.unique(np.round(out[:, 0, 16, 16].numpy() / 0.4 * 255))
    assert levels.tolist() == [10, 20, 30, 40, 50]


@pytest.mark.parametrize("rate", [3, 60])
def test_shot_noise_tables_draw_poisson_counts(rate: int) -> None:
    from scipy import stats

    levels = torch.tensor([0, 1, 37, 128, 255]).repeat_interleave(40_000).float()
    counts = ops._poisson_levels(levels, rate, _gen(rate)).view(5, -1).numpy()
    for row, level in zip(counts, [0, 1, 37, 128, 255], strict=True):
        lam = level / 255 * rate
        if lam == 0:
            assert not row.any()
            continue
        support = np.arange(int(lam + 8 * np.sqrt(lam) + 8))
        observed = np.bincount(row, minlength=len(support))[: len(support)]
        expected = stats.poisson.pmf(support, lam) * len(row)
        keep = expected > 5  # Pearson's chi-square on the well-populated counts
        chi2 = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
        assert chi2 < stats.chi2.ppf(0.999, keep.sum() - 1), (level, chi2)
    off_grid = torch.full((1, 3, 8, 8), 0.3001)  # not a multiple of 1/255: torch.poisson
    assert corrupt(off_grid, "shot_noise", 1, _gen(), quantize=False).shape == off_grid.shape


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ["pixelate", "jpeg_compression"])
def test_uint8_fast_paths_equal_the_float_path(name: str, channels: int) -> None:
    gen = _gen(channels)
    noise = torch.rand(3, channels, 37, 53, generator=gen) * 255
    images = torch.nn.functional.avg_pool2d(noise, 5, 1, 2).to(torch.uint8)  # smooth, odd size
    for severity in range(1, 6):
        fast = corrupt(images, name, severity)
        slow = corrupt(images.float() / 255, name, severity)
        assert torch.equal(fast, (slow * 255).round().to(torch.uint8)), severity


def test_impulse_noise_single_draw_keeps_the_salt_and_pepper_law() -> None:
    x = torch.full((1, 3, 200, 200), 0.5)
    y = corrupt(x, "impulse_noise", 5, _gen(), quantize=False)
    salt, pepper = float((y == 1).float().mean()), float((y == 0).float().mean())
    se = math.sqrt(0.135 * 0.865 / y.numel())
    assert abs(salt - 0.135) < 4 * se and abs(pepper - 0.135) < 4 * se
