"""Per-sample transforms: Fundus2Video's field-of-view preprocessing and its knowledge mask.

A Fundus2Video sample holds ``image`` (the colour-fundus photograph, CF) and ``video`` (the ``M``
co-registered fluorescein-angiography frames in time order). :class:`FOVPreprocess` turns the raw
8-bit images into the network's ``[-1, 1]`` tensors; :class:`KnowledgeMask` adds the key
``knowledge_mask`` computed from the earliest and the latest frame.

References:
    Zhang et al., "Fundus2Video", MICCAI 2024, arXiv 2408.15217; code ``Michi-3000/Fundus2Video``,
    ``data/aligned_dataset_fundus2video_tempo.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, SampleTransform
from scipy import ndimage

from asklepios_knowledge_mask.params import FOVPreprocessParams, KnowledgeMaskParams

__all__ = [
    "FOVPreprocess",
    "KnowledgeMask",
    "cross_element",
    "fov_mask",
    "knowledge_mask",
    "to_uint8",
]


def cross_element(size: int) -> np.ndarray:
    """Return OpenCV's ``MORPH_CROSS`` element: one-pixel-wide centre row and column."""
    element = np.zeros((size, size), dtype=bool)
    element[size // 2, :] = True
    element[:, size // 2] = True
    return element


def to_uint8(frames: torch.Tensor, value_range: str = "[-1,1]") -> torch.Tensor:
    """Return ``frames`` as 8-bit values (a uint8 tensor is returned unchanged).

    Float frames in ``[-1, 1]`` (or ``[0, 1]``) are mapped back to 0..255 and rounded, which undoes
    the ``ToTensor`` + normalisation of the original pipeline exactly.
    """
    if frames.dtype == torch.uint8:
        return frames
    scaled = (frames + 1.0) * 127.5 if value_range == "[-1,1]" else frames * 255.0
    return scaled.round().clamp(0, 255).to(torch.uint8)


def knowledge_mask(first: torch.Tensor, last: torch.Tensor, threshold: int = 45) -> torch.Tensor:
    """Compute ``K = 1[|first - last| > threshold]`` on 8-bit single-channel frames.

    Args:
        first: earliest frame in time order, uint8, shape ``(..., H, W)``.
        last: latest frame, same shape and dtype.
        threshold: strict threshold on the absolute 8-bit difference (OpenCV ``THRESH_BINARY``).

    Returns:
        Float tensor of the same shape with values in ``{0, 1}``.
    """
    if first.dtype != torch.uint8 or last.dtype != torch.uint8:
        raise ComponentError(
            f"knowledge_mask expects uint8 frames, got {first.dtype} and {last.dtype}; "
            "convert with to_uint8() first"
        )
    diff = (first.to(torch.int16) - last.to(torch.int16)).abs()
    return (diff > threshold).to(torch.float32)


def fov_mask(
    cf_green: np.ndarray,
    ffa_green: np.ndarray,
    cf_threshold: int = 11,
    ffa_threshold: int = 2,
    dilation: int = 11,
) -> np.ndarray:
    """Compute the field-of-view mask of a CF image and its co-registered FFA frames.

    ``(G_cf > 11) ∧ ⋀_m (G_ffa_m > 2)``, the largest 8-connected component (all of them when
    several tie), one dilation with the
    ``dilation``×``dilation`` cross element, holes filled.

    Args:
        cf_green: green channel of the CF image, uint8 ``(H, W)``.
        ffa_green: green channels of the FFA frames, uint8 ``(M, H, W)``.
        cf_threshold: strict threshold on the CF green channel.
        ffa_threshold: strict threshold on every FFA frame.
        dilation: side of the cross structuring element (odd).

    Returns:
        Boolean ``(H, W)`` mask; all False when no pixel passes the thresholds.
    """
    raw = (cf_green > cf_threshold) & np.all(ffa_green > ffa_threshold, axis=0)
    labels, count = ndimage.label(raw, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return raw
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    # every component of the largest size stays, as the original's keeplargest keeps ties
    largest = np.isin(labels, np.flatnonzero(sizes == sizes.max()))
    dilated = ndimage.binary_dilation(largest, structure=cross_element(dilation))
    return ndimage.binary_fill_holes(dilated)


def _as_chw_uint8(image: Any, where: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(image)) if not isinstance(image, torch.Tensor) else image
    if tensor.dtype != torch.uint8:
        raise ComponentError(
            f"knowledge_mask.fov_preprocess: sample['{where}'] must be uint8 (raw 8-bit images), "
            f"got {tensor.dtype}; put fov_preprocess first in data.transforms"
        )
    return tensor


def _resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(N, C, h, w)`` uint8 images bilinearly (no antialiasing, like cv2.resize)."""
    out = F.interpolate(
        images.to(torch.float32), size=(size, size), mode="bilinear", align_corners=False
    )
    return out.round().clamp(0, 255).to(torch.uint8)


class FOVPreprocess(SampleTransform):
    """Mask to the field of view, crop, resize and normalise a CF image and its FFA frames.

    Input sample: ``image`` uint8 ``(3, H, W)`` (RGB CF) and ``video`` uint8 ``(M, 3, H, W)`` or
    ``(M, H, W)`` (FFA frames, time order, registered to the CF). Output: ``image`` float
    ``(3, S, S)`` and ``video`` float ``(M, 3, S, S)`` (green channel copied to 3), both in
    ``[-1, 1]``, and ``fov_mask`` float ``(1, S, S)``.

    Steps (§2 of the spec): FOV mask, zero outside it, crop to its bounding box, optional shared
    random crop drawn once for all images (each side keeps at least a third), bilinear resize to
    ``S``, optional horizontal flip.
    """

    def __init__(self, params: FOVPreprocessParams, ctx: BuildContext) -> None:
        self.params = params
        if self.params.dilation % 2 == 0:
            raise ComponentError(
                f"knowledge_mask.fov_preprocess: dilation must be odd, got {self.params.dilation}"
            )

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        if "image" not in sample or "video" not in sample:
            raise ComponentError(
                "knowledge_mask.fov_preprocess needs sample keys 'image' (CF) and 'video' (FFA "
                f"frames); got {sorted(sample)}"
            )
        cf = _as_chw_uint8(sample["image"], "image")
        video = _as_chw_uint8(sample["video"], "video")
        if video.ndim == 4:
            video = video[:, 1]  # green channel of each FFA frame
        if cf.ndim != 3 or cf.shape[0] != 3 or video.ndim != 3 or video.shape[-2:] != cf.shape[-2:]:
            raise ComponentError(
                "knowledge_mask.fov_preprocess: expected image (3, H, W) and video (M, [3,] H, W) "
                f"of the same H, W (co-registered), got {tuple(cf.shape)} and {tuple(video.shape)}"
            )
        fov = fov_mask(cf[1].numpy(), video.numpy(), p.cf_threshold, p.ffa_threshold, p.dilation)
        if not fov.any():
            raise ComponentError(
                "knowledge_mask.fov_preprocess: the field-of-view mask is empty (no pixel has CF "
                f"green > {p.cf_threshold} and every FFA frame > {p.ffa_threshold}); check that "
                "the images are 8-bit and registered"
            )
        rows = np.flatnonzero(fov.any(axis=1))
        cols = np.flatnonzero(fov.any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        keep = torch.from_numpy(fov[y0:y1, x0:x1])
        stack = torch.cat([cf[:, y0:y1, x0:x1], video[:, y0:y1, x0:x1]], dim=0) * keep
        stack = torch.cat([stack, keep[None].to(torch.uint8) * 255], dim=0)
        if p.random_crop:
            h, w = stack.shape[-2:]
            # floor(2w/3) + floor(w/3) <= w, so the second draw always has a valid range
            x = int(torch.randint(0, int(w / 1.5) + 1, ()))
            x2 = int(torch.randint(x + max(w // 3, 1), w + 1, ()))
            y = int(torch.randint(0, int(h / 1.5) + 1, ()))
            y2 = int(torch.randint(y + max(h // 3, 1), h + 1, ()))
            stack = stack[:, y:y2, x:x2]
        resized = _resize_uint8(stack[None], p.size)[0]
        fov_out = (resized[-1:] > 0).to(torch.float32)
        images = resized[:-1].to(torch.float32) / 127.5 - 1.0
        out_cf = images[:3]
        out_video = images[3:, None].expand(-1, 3, -1, -1).contiguous()
        out = dict(sample)
        if p.flip_p > 0 and float(torch.rand(())) < p.flip_p:
            out_cf = out_cf.flip(-1)
            if p.mode == "fixed":
                out_video = out_video.flip(-1)
                fov_out = fov_out.flip(-1)
                if "knowledge_mask" in out:
                    out["knowledge_mask"] = torch.as_tensor(out["knowledge_mask"]).flip(-1)
        out.update(image=out_cf, video=out_video, fov_mask=fov_out)
        return out

    def output_shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Return the shapes after resizing to ``size`` (frames become 3-channel)."""
        size = self.params.size
        out = dict(shapes)
        out["image"] = (3, size, size)
        out["video"] = (shapes["video"][0], 3, size, size)
        out["fov_mask"] = (1, size, size)
        if "knowledge_mask" in shapes:
            out["knowledge_mask"] = (1, size, size)
        return out

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return a tiny raw sample: the real retina photo with 4 SYNTHETIC FFA frames."""
        from asklepios_knowledge_mask.synthetic import synthetic_fundus_video

        cf, video = synthetic_fundus_video(size=48, num_frames=4, seed=0)
        return {"image": cf, "video": video}


class KnowledgeMask(SampleTransform):
    """Add ``knowledge_mask``: the pixels whose 8-bit value changes by > 45 over the video.

    ``K = 1[|G_first - G_last| > 45]`` on the green channel of the earliest and the latest FFA
    frame (``video[0]`` and ``video[-1]``; frames are in time order), taken after the
    field-of-view crop and resize. Output: float ``(1, H, W)`` in ``{0, 1}``.
    """

    def __init__(self, params: KnowledgeMaskParams, ctx: BuildContext) -> None:
        self.params = params

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        if "video" not in sample:
            raise ComponentError(
                "knowledge_mask.mask needs sample key 'video' (FFA frames in time order); got "
                f"{sorted(sample)}"
            )
        video = torch.as_tensor(sample["video"])
        if video.ndim == 4:
            video = video[:, p.channel]
        if video.ndim != 3 or video.shape[0] < 1:
            raise ComponentError(
                "knowledge_mask.mask: 'video' must be (M, C, H, W) or (M, H, W) with M >= 1, got "
                f"shape {tuple(video.shape)}"
            )
        frames = to_uint8(video, p.value_range)
        out = dict(sample)
        out["knowledge_mask"] = knowledge_mask(frames[0], frames[-1], p.threshold)[None]
        return out

    def example_sample(self, ctx: BuildContext) -> dict[str, Any]:
        """Return a sample with a 4-frame ``[-1, 1]`` video."""
        gen = torch.Generator().manual_seed(0)
        return {
            "image": torch.rand(3, 16, 16, generator=gen) * 2 - 1,
            "video": torch.rand(4, 3, 16, 16, generator=gen) * 2 - 1,
        }
