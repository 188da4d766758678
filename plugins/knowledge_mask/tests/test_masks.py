"""Spec §12 checks 1-2: knowledge-mask exactness and field-of-view mask properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from asklepios_knowledge_mask.masks import FOVPreprocess, KnowledgeMask, cross_element, fov_mask
from asklepios_knowledge_mask.params import FOVPreprocessParams, KnowledgeMaskParams
from asklepios_knowledge_mask.synthetic import retina_photo, synthetic_fundus_video
from asklepios_sdk import BuildContext, ComponentError

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def _square_frames() -> tuple[np.ndarray, np.ndarray]:
    early = np.zeros((512, 512), np.uint8)
    early[10:30, 10:30] = 60
    late = np.zeros((512, 512), np.uint8)
    late[100:150, 100:150] = 46
    late[300:330, 300:330] = 45
    return early, late


def test_knowledge_mask_exact_count_and_dtype() -> None:
    early, late = _square_frames()
    rng = np.random.default_rng(0)
    middle = rng.integers(0, 256, (512, 512), dtype=np.uint8)  # must be ignored
    video = torch.from_numpy(np.stack([early, middle, late]))[:, None].expand(-1, 3, -1, -1)
    out = KnowledgeMask(KnowledgeMaskParams(), CTX)({"video": video.contiguous()})
    k = out["knowledge_mask"]
    expected = np.abs(early.astype(np.int64) - late.astype(np.int64)) > 45
    assert k.shape == (1, 512, 512) and k.dtype == torch.float32
    assert set(torch.unique(k).tolist()) <= {0.0, 1.0}
    assert int(k.sum()) == int(expected.sum()) == 20 * 20 + 50 * 50
    np.testing.assert_array_equal(k[0].numpy().astype(bool), expected)
    assert k[0, 310, 310] == 0  # difference of exactly 45 is excluded (strict threshold)
    assert k[0, 15, 15] == 1  # bright only in the early frame: absolute difference counts


def test_knowledge_mask_from_normalised_float_frames_equals_uint8() -> None:
    early, late = _square_frames()
    video8 = torch.from_numpy(np.stack([early, late]))[:, None].expand(-1, 3, -1, -1)
    videof = video8.to(torch.float32) / 127.5 - 1.0
    k8 = KnowledgeMask(KnowledgeMaskParams(), CTX)({"video": video8.contiguous()})["knowledge_mask"]
    kf = KnowledgeMask(KnowledgeMaskParams(), CTX)({"video": videof})["knowledge_mask"]
    assert torch.equal(k8, kf)


def test_knowledge_mask_after_crop_and_resize_uses_first_and_last_frame() -> None:
    size, out_size = 96, 48
    yy, xx = np.mgrid[0:size, 0:size]
    disk = (yy - 48) ** 2 + (xx - 48) ** 2 <= 30**2
    cf = np.zeros((3, size, size), np.uint8)
    cf[:, disk] = 120
    frames = np.zeros((4, size, size), np.uint8)
    frames[:, disk] = 10
    frames[0][disk & (yy < 48)] = 200  # early-bright upper half
    frames[1][disk] = 250  # middle frames differ everywhere: must not matter
    frames[2][disk] = 90
    frames[3][disk & (xx < 48)] = 100  # late-bright left half
    sample = {"image": torch.from_numpy(cf), "video": torch.from_numpy(frames)}
    params = FOVPreprocessParams(size=out_size, random_crop=False, flip_p=0.0)
    out = KnowledgeMask(KnowledgeMaskParams(), CTX)(FOVPreprocess(params, CTX)(sample))
    # independent path: FOV = dilated disk clipped to the image; crop its box, resize first/last
    fov = fov_mask(cf[1], frames)
    rows, cols = np.flatnonzero(fov.any(1)), np.flatnonzero(fov.any(0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    pair = torch.from_numpy(np.stack([frames[0][box] * fov[box], frames[3][box] * fov[box]]))
    pair = F.interpolate(pair[None].float(), size=(out_size, out_size), mode="bilinear")[0]
    pair = pair.round().clamp(0, 255).numpy().astype(np.int64)
    expected = np.abs(pair[0] - pair[1]) > 45
    np.testing.assert_array_equal(out["knowledge_mask"][0].numpy().astype(bool), expected)
    assert expected.any()


def test_fov_mask_keeps_every_tied_largest_component() -> None:
    # the original's remove_small_objects(keeplargest=1) zeroes components smaller than the
    # largest, so two squares of the same size both stay; a smaller third one goes
    cf_green = np.zeros((80, 80), np.uint8)
    cf_green[5:15, 5:15] = cf_green[50:60, 50:60] = 100
    cf_green[5:9, 60:64] = 100
    mask = fov_mask(cf_green, np.full((1, 80, 80), 9, np.uint8), dilation=1)
    assert mask[5:15, 5:15].all() and mask[50:60, 50:60].all()
    assert not mask[5:9, 60:64].any()
    assert mask.sum() == 200


def test_fov_mask_largest_component_hole_filling_and_cross_dilation() -> None:
    size = 120
    yy, xx = np.mgrid[0:size, 0:size]
    disk = (yy - 60) ** 2 + (xx - 60) ** 2 <= 40**2
    hole = (yy - 60) ** 2 + (xx - 60) ** 2 <= 12**2
    blob = (yy - 5) ** 2 + (xx - 112) ** 2 <= 3**2
    cf_green = np.zeros((size, size), np.uint8)
    cf_green[disk & ~hole] = 150
    cf_green[blob] = 200
    ffa = np.full((3, size, size), 50, np.uint8)
    mask = fov_mask(cf_green, ffa)
    assert not mask[blob].any()  # detached blob removed (largest component only)
    assert mask[disk].all()  # contains the disk, interior hole filled
    # dilation by the cross: one pixel beyond the disk along the axes, 5 pixels reach
    assert mask[60, 60 + 40 + 5] and not mask[60, 60 + 40 + 6]
    # one isolated pixel dilates to exactly the element's area: 11 + 11 - 1
    single = np.zeros((40, 40), np.uint8)
    single[20, 20] = 255
    dot = fov_mask(single, np.full((1, 40, 40), 9, np.uint8))
    assert dot.sum() == 2 * 11 - 1 == cross_element(11).sum()
    assert dot[20, 15] and dot[20, 25] and dot[15, 20] and dot[25, 20] and not dot[21, 21]


def test_fov_mask_on_real_retina_photo() -> None:
    cf = retina_photo(128).numpy()
    mask = fov_mask(cf[1], np.full((1, 128, 128), 50, np.uint8))
    # the photograph is a bright disk on a black background
    assert 0.4 < mask.mean() < 0.95
    assert mask[64, 64] and not mask[0, 0]


def _raw_sample(size: int = 64, frames: int = 4) -> dict[str, torch.Tensor]:
    cf, video = synthetic_fundus_video(size=size, num_frames=frames, seed=1)
    return {"image": cf, "video": video}


def test_fov_preprocess_shapes_ranges_and_zeroing() -> None:
    out = FOVPreprocess(FOVPreprocessParams(size=32, random_crop=False, flip_p=0.0), CTX)(
        _raw_sample()
    )
    assert out["image"].shape == (3, 32, 32) and out["video"].shape == (4, 3, 32, 32)
    for key in ("image", "video"):
        assert out[key].min() >= -1.0 and out[key].max() <= 1.0
    assert torch.equal(out["video"][:, 0], out["video"][:, 2])  # green copied to 3 channels
    outside = out["fov_mask"][0] == 0
    assert outside.any()
    assert torch.all(out["video"][:, :, outside] == -1.0)


@pytest.mark.parametrize("mode", ["fixed", "faithful"])
def test_flip_together_by_default_cf_only_when_faithful(mode: str) -> None:
    base = FOVPreprocessParams(size=32, random_crop=False, flip_p=0.0, mode=mode)
    flip = base.model_copy(update={"flip_p": 1.0})
    plain = FOVPreprocess(base, CTX)(_raw_sample())
    flipped = FOVPreprocess(flip, CTX)(_raw_sample())
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    video_expected = plain["video"].flip(-1) if mode == "fixed" else plain["video"]
    assert torch.equal(flipped["video"], video_expected)


def test_random_crop_is_shared_and_seeded() -> None:
    params = FOVPreprocessParams(size=32, random_crop=True, flip_p=0.0)
    torch.manual_seed(3)
    a = FOVPreprocess(params, CTX)(_raw_sample())
    torch.manual_seed(3)
    b = FOVPreprocess(params, CTX)(_raw_sample())
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["video"], b["video"])
    # one box for all images: CF and every frame are zero outside the same (resized) FOV
    outside = a["fov_mask"][0] == 0
    assert torch.all(a["video"][:, :, outside] == -1.0)
    assert torch.all(a["image"][:, outside] == -1.0)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ComponentError, match="uint8"):
        FOVPreprocess(FOVPreprocessParams(), CTX)(
            {"image": torch.zeros(3, 8, 8), "video": torch.zeros(2, 8, 8)}
        )
    with pytest.raises(ComponentError, match="empty"):
        FOVPreprocess(FOVPreprocessParams(), CTX)(
            {"image": torch.zeros(3, 8, 8, dtype=torch.uint8), "video": torch.zeros(2, 8, 8).byte()}
        )
    with pytest.raises(ComponentError, match="'video'"):
        KnowledgeMask(KnowledgeMaskParams(), CTX)({"image": torch.zeros(3, 8, 8)})
