"""ImageNet-C corruptions (15 × 5 severities) and the MedMNIST-C dermatology preset, on torch.

:func:`corrupt` is the batched, device-side, seeded core; :class:`Corruption` is the per-sample
augmentation ``diffusion_tta.corruptions`` built on it; :func:`corrupt_uint8` mirrors
``imagecorruptions.corrupt`` (HWC ``uint8`` in and out) for references and benchmarks.

References:
    Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
    Perturbations", ICLR 2019 (parameters of the ``imagecorruptions`` 1.1.2 package).
    Di Salvo et al., "MedMNIST-C", 2024 (``dermamnist`` preset, partial; see the README).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, SampleTransform
from torch import Tensor

from asklepios_diffusion_tta import _imagenet_c as ops
from asklepios_diffusion_tta.params import CorruptionParams

__all__ = [
    "CORRUPTIONS",
    "DETERMINISTIC",
    "EXTRA_CORRUPTIONS",
    "FROST_TEXTURES",
    "MEDMNIST_DERMA",
    "Corruption",
    "CorruptionParams",
    "corrupt",
    "corrupt_uint8",
    "load_textures",
    "resolve_corruptions",
]

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
"""The 15 ImageNet-C corruptions, in the order of DDA's config."""

EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur")
"""Corruptions of the ``imagecorruptions`` package beyond the 15 (validation set of ImageNet-C)."""

# MedMNIST-C ``dermamnist`` preset: (base operation, 5 severity parameters). Only the corruptions
# whose five parameters the spec gives are included; brightness factors between the stated end
# points are filled linearly (reconstructed).
MEDMNIST_DERMA: dict[str, tuple[str, list]] = {
    "derma_pixelate": ("pixelate", [0.7, 0.5, 0.4, 0.3, 0.25]),
    "derma_jpeg_compression": ("jpeg_compression", [30, 20, 15, 10, 7]),
    "derma_gaussian_noise": ("gaussian_noise", [0.04, 0.08, 0.12, 0.18, 0.26]),
    "derma_speckle_noise": ("speckle_noise", [0.05, 0.15, 0.2, 0.35, 0.45]),
    "derma_impulse_noise": ("impulse_noise", [0.01, 0.03, 0.06, 0.09, 0.17]),
    "derma_shot_noise": ("shot_noise", [60, 25, 18, 10, 5]),
    "derma_brightness_up": ("brightness_factor", [1.1, 1.2, 1.3, 1.4, 1.5]),
    "derma_brightness_down": ("brightness_factor", [0.9, 0.8, 0.7, 0.6, 0.5]),
}

DETERMINISTIC: frozenset[str] = frozenset(
    {
        "defocus_blur",
        "zoom_blur",
        "brightness",
        "contrast",
        "pixelate",
        "jpeg_compression",
        "gaussian_blur",
        "derma_pixelate",
        "derma_jpeg_compression",
        "derma_brightness_up",
        "derma_brightness_down",
    }
)
"""Corruptions that draw no random numbers: whole batches give the per-image results."""

PRESETS: dict[str, tuple[str, ...]] = {
    "imagenet_c": CORRUPTIONS,
    "imagenet_c_extra": CORRUPTIONS + EXTRA_CORRUPTIONS,
    "medmnist_derma": tuple(MEDMNIST_DERMA),
}

FROST_TEXTURES = 5
"""Frost draws from this many textures (the first by file name): ImageNet-C's frost1-frost5."""

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _brightness_factor(x: Tensor, c: float, gen: torch.Generator) -> Tensor:
    return (x * c).clamp(0, 1)


def resolve_corruptions(names: str | Sequence[str]) -> tuple[str, ...]:
    """Expand a preset name (``imagenet_c``, ``medmnist_derma``, ...) or check a list of names.

    Raises:
        ComponentError: a name is neither a preset nor a known corruption.
    """
    if isinstance(names, str):
        if names in PRESETS:
            return PRESETS[names]
        names = [names]
    known = set(ops.OPS) | set(MEDMNIST_DERMA)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ComponentError(
            f"unknown corruption(s) {unknown}; use a preset ({', '.join(PRESETS)}) or names from "
            f"{sorted(known)}"
        )
    return tuple(names)


@lru_cache(maxsize=8)
def _load_textures_cached(directory: str) -> tuple[Tensor, ...]:
    from PIL import Image

    root = Path(directory)
    if not root.is_dir():
        raise ComponentError(
            f"frost texture directory {directory!r} does not exist; point 'frost_texture_dir' at a "
            "folder of frost photographs (e.g. the 'frost' folder of the imagecorruptions package)"
        )
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise ComponentError(f"frost texture directory {directory!r} holds no image files")
    textures = []
    for path in files:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        textures.append(torch.from_numpy(array).permute(2, 0, 1).contiguous())
    return tuple(textures)


def load_textures(directory: str | Path) -> tuple[Tensor, ...]:
    """Load every image of ``directory`` (sorted by name) as a float ``(3, h, w)`` texture."""
    return _load_textures_cached(str(Path(directory).resolve()))


CPU_CHUNK_VALUES = 1 << 19
"""On the CPU a batch is corrupted in chunks of about this many values (a few 224² images), so
that every intermediate stays in cache instead of paging in tens of megabytes per operation."""


def _select_op(
    name: str, severity: int, frost_texture_dir: str | Path | None
) -> Callable[[Tensor, torch.Generator], Tensor]:
    if name in MEDMNIST_DERMA:
        base, table = MEDMNIST_DERMA[name]
        op = _brightness_factor if base == "brightness_factor" else ops.OPS[base]
        return lambda x, gen: op(x, table[severity - 1], gen)
    if name == "frost":
        if frost_texture_dir is None:
            raise ComponentError(
                "corruption 'frost' needs frost textures: set 'frost_texture_dir' to a folder of "
                "frost photographs (asklepios ships none), or leave 'frost' out of the list"
            )
        textures = load_textures(frost_texture_dir)[:FROST_TEXTURES]
        return lambda x, gen: ops.frost(x, ops.PARAMS["frost"][severity - 1], gen, textures)
    if name in ops.OPS:
        return lambda x, gen: ops.OPS[name](x, ops.PARAMS[name][severity - 1], gen)
    resolve_corruptions([name])
    raise AssertionError("unreachable")


def corrupt(
    images: Tensor,
    name: str,
    severity: int,
    generator: torch.Generator | None = None,
    *,
    frost_texture_dir: str | Path | None = None,
    quantize: bool = True,
    chunk_size: int | None = None,
) -> Tensor:
    """Corrupt a batch ``(B, C, H, W)`` of images in [0, 1] with ``name`` at ``severity`` 1..5.

    Args:
        images: float tensor in [0, 1] (or ``uint8`` in 0..255), ``C`` in {1, 3}; stays on its
            device.
        name: a corruption of :data:`CORRUPTIONS`, :data:`EXTRA_CORRUPTIONS` or
            :data:`MEDMNIST_DERMA`.
        severity: 1 (mildest) to 5.
        generator: a ``torch.Generator`` on the images' device; ``None`` uses torch's global one.
        frost_texture_dir: folder of frost photographs, required by ``frost``; one of the first
            :data:`FROST_TEXTURES` files by name is drawn per image, as ``imagecorruptions``
            draws one of frost1-frost5 (it never uses its frost6).
        quantize: truncate the result to 8-bit levels, as ``imagecorruptions``' final
            ``np.uint8`` cast does (and as the saved ImageNet-C images are).
        chunk_size: images per chunk; default: the whole batch on an accelerator, about
            :data:`CPU_CHUNK_VALUES` values on the CPU. The random draws follow the chunks, so
            a seeded result depends on the chunk size (and the device), not on anything else.

    Returns:
        The corrupted batch, same shape, dtype (and value scale) and device.

    Raises:
        ComponentError: unknown name, severity outside 1..5, bad shape, or missing textures.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ComponentError(
            f"corrupt expects images of shape (B, 1|3, H, W), got {tuple(images.shape)}"
        )
    if not 1 <= int(severity) <= 5:
        raise ComponentError(f"severity must be 1..5, got {severity}")
    is_uint8 = images.dtype == torch.uint8
    if not (is_uint8 or images.is_floating_point()):
        raise ComponentError(f"corrupt expects float images in [0, 1] or uint8, got {images.dtype}")
    if generator is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator(device=images.device).manual_seed(seed)
    op = _select_op(name, int(severity), frost_texture_dir)
    if chunk_size is None:
        per_image = max(1, images[:1].numel())
        on_cpu = images.device.type == "cpu"
        chunk_size = max(1, CPU_CHUNK_VALUES // per_image) if on_cpu else images.shape[0]
    out = torch.empty_like(images)
    if is_uint8 and images.device.type == "cpu" and name in ops.UINT8_OPS:
        fast = ops.UINT8_OPS[name]
        for start in range(0, images.shape[0], chunk_size):
            part = images[start : start + chunk_size]
            out[start : start + chunk_size] = fast(part, ops.PARAMS[name][int(severity) - 1])
        return out
    for start in range(0, images.shape[0], chunk_size):
        part = images[start : start + chunk_size]
        x = part.float().div_(255) if is_uint8 else part.clamp(0, 1)
        y = op(x, generator)
        if is_uint8 or quantize:
            levels = torch.floor(y * 255)
            y = levels if is_uint8 else levels.div_(255)
        out[start : start + chunk_size] = y
    return out


def corrupt_uint8(
    image: np.ndarray,
    name: str,
    severity: int,
    seed: int = 0,
    frost_texture_dir: str | Path | None = None,
) -> np.ndarray:
    """Corrupt one ``uint8`` HWC (or HW) image like ``imagecorruptions.corrupt``, seeded."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ComponentError(f"corrupt_uint8 expects a uint8 array, got {array.dtype}")
    grey = array.ndim == 2
    tensor = torch.from_numpy(array[..., None] if grey else array).permute(2, 0, 1)[None]
    gen = torch.Generator().manual_seed(int(seed))
    out = corrupt(tensor, name, severity, gen, frost_texture_dir=frost_texture_dir)
    result = out[0].permute(1, 2, 0).numpy()
    return result[..., 0] if grey else result


def sample_seed(seed: int, index: int, name: str, severity: int) -> int:
    """Derive the seed of one (sample, corruption, severity) so every model sees the same image."""
    digest = hashlib.sha256(f"{seed}:{index}:{name}:{severity}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class Corruption(SampleTransform):
    """Corrupt each sample with an ImageNet-C / MedMNIST-C corruption at a severity.

    With ``seed`` and a sample ``index``, the corruption (and a drawn severity) of each sample is
    fixed; a preset draws one of its corruptions per sample.
    """

    def __init__(self, params: CorruptionParams, ctx: BuildContext) -> None:
        self.params = params
        self.names = resolve_corruptions(params.corruption)
        if isinstance(params.severity, int) and not 1 <= params.severity <= 5:
            raise ComponentError(
                f"diffusion_tta.corruptions: severity must be 1..5, got {params.severity}"
            )
        lo, hi = params.value_range
        if not hi > lo:
            raise ComponentError(
                f"diffusion_tta.corruptions: value_range {params.value_range} is empty"
            )

    def _generator(self, sample: dict[str, Any]) -> torch.Generator:
        index = sample.get("index")
        if self.params.seed is None or index is None:
            return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        key = sample_seed(self.params.seed, int(index), "|".join(self.names), 0)
        return torch.Generator().manual_seed(key)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image = sample["image"]
        if not isinstance(image, Tensor) or image.ndim != 3:
            raise ComponentError(
                "diffusion_tta.corruptions expects sample['image'] as a (C, H, W) tensor; put it "
                "after the transform that makes the tensor"
            )
        gen = self._generator(sample)
        pick = int(torch.randint(len(self.names), (1,), generator=gen))
        severity = self.params.severity
        if severity == "random":
            severity = int(torch.randint(1, 6, (1,), generator=gen))
        lo, hi = self.params.value_range
        x = ((image.float() - lo) / (hi - lo))[None]
        out = corrupt(
            x.cpu(),
            self.names[pick],
            int(severity),
            gen,
            frost_texture_dir=self.params.frost_texture_dir,
            quantize=self.params.quantize,
        )[0]
        sample = dict(sample)
        sample["image"] = (out * (hi - lo) + lo).to(image.dtype)
        return sample

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return a sample with a 3-channel image in ``value_range``."""
        lo, hi = self.params.value_range
        gen = torch.Generator().manual_seed(0)
        image = torch.rand(3, 32, 32, generator=gen) * (hi - lo) + lo
        return {"image": image, "label": torch.tensor(0), "index": 0}
