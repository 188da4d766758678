"""Spec check 5: explicit-prior plumbing, MaskCLIP features, and SAM preprocessing on retina()."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tiny import CTX, TINY_CLIP, batch, chain, clip_checkpoint, encoder, prior_params
from asklepios_sdk import ComponentError
from asklepios_tpdrseg.params import ExplicitPriorParams
from asklepios_tpdrseg.preprocess import sam_preprocess
from asklepios_tpdrseg.prior import (
    ExplicitPrior,
    clip_branch_input,
    maskclip_dense_features,
    prior_from_features,
    resize_prior,
)

CHOSEN = [(3, 4), (10, 20), (15, 15), (22, 7), (27, 27)]


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def _stub(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    z = _unit(torch.randn(1, 28, 28, 512, generator=gen))
    text = _unit(torch.randn(2 + 4, 512, generator=gen))  # 2 lesion prompts, 4 background
    for row, col in CHOSEN:
        z[0, row, col] = text[0]
    lesion = torch.tensor([[True, True, False, False, False, False]])
    return z, text, lesion


def _numpy_softmax_prior(z, text, lesion, tau):
    scores = np.einsum("bhwd,nd->bhwn", z, text) / tau
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(-1, keepdims=True)
    return (p * lesion[:, None, None, :]).sum(-1)


@pytest.mark.parametrize("mode", ["softmax_vs_background", "minmax_mean_similarity"])
def test_the_prior_peaks_on_the_cells_that_look_like_the_lesion(mode) -> None:
    z, text, lesion = _stub()
    prior = prior_from_features(z, text, lesion, torch.ones_like(lesion), mode, 0.01)
    assert prior.shape == (1, 28, 28)
    top5 = set(torch.topk(prior.flatten(), 5).indices.tolist())
    assert top5 == {r * 28 + c for r, c in CHOSEN}
    resized = resize_prior(prior, 64)
    assert resized.shape == (1, 1, 64, 64)
    assert float(resized.min()) >= 0 and float(resized.max()) <= 1
    row, col = divmod(int(resized.flatten().argmax()), 64)
    scale = 64 / 28
    assert any(
        r * scale - 1 <= row <= (r + 1) * scale and c * scale - 1 <= col <= (c + 1) * scale
        for r, c in CHOSEN
    )


def test_the_softmax_prior_matches_numpy_and_ignores_other_lesions_prompts() -> None:
    z, text, _ = _stub(1)
    lesion = torch.tensor([[True, False, False, False, False, False]])
    allowed = torch.tensor([[True, False, True, True, True, True]])  # prompt 1 is another lesion's
    ours = prior_from_features(z, text, lesion, allowed, "softmax_vs_background", 0.05)
    keep = allowed[0].numpy()
    expected = _numpy_softmax_prior(z.numpy(), text.numpy()[keep], lesion.numpy()[:, keep], 0.05)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-5)


def test_minmax_mode_spans_zero_to_one_per_image() -> None:
    z, text, lesion = _stub(2)
    prior = prior_from_features(z, text, lesion, lesion, "minmax_mean_similarity")
    mean_cos = (z @ text[:2].T).mean(-1)
    expected = (mean_cos - mean_cos.min()) / (mean_cos.max() - mean_cos.min())
    torch.testing.assert_close(prior, expected, atol=1e-5, rtol=0)


def test_maskclip_features_are_the_last_blocks_value_path() -> None:
    """An attention restricted to the diagonal returns out_proj(v): the MaskCLIP token path."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP["model_cfg"]).eval()
    visual = model.visual
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ours = maskclip_dense_features(visual, images)
        x = visual._embeds(images)
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        last = visual.transformer.resblocks[-1]
        n = x.shape[1]
        diagonal = torch.full((n, n), float("-inf")).fill_diagonal_(0)
        y = last.ln_1(x)
        tokens = last.attn(y, y, y, need_weights=False, attn_mask=diagonal)[0]
        expected = F.normalize((visual.ln_post(tokens) @ visual.proj)[:, 1:], dim=-1)
    assert ours.shape == (2, 4, 4, 16)
    torch.testing.assert_close(ours.reshape(2, 16, 16), expected, atol=1e-5, rtol=0)
    # at twice the resolution the position embedding is interpolated to an 8 x 8 grid
    assert maskclip_dense_features(visual, torch.randn(1, 3, 64, 64)).shape == (1, 8, 8, 16)


def test_the_adapter_adds_a_detached_prior_per_lesion_without_trainable_parameters() -> None:
    model = chain(upto="prior")
    assert not any(p.requires_grad for p in model.parameters())
    data = batch(2)
    data["image"].requires_grad_(True)
    out = model(data)
    prior = out["prior"]
    assert prior.shape == (2, 1, 8, 8) and not prior.requires_grad
    assert float(prior.min()) >= 0 and float(prior.max()) <= 1
    other = model({**data, "lesion": torch.tensor([2, 3])})["prior"]
    assert not torch.allclose(prior, other)
    with pytest.raises(ComponentError, match="lesion"):
        model({"image": data["image"]})


def test_the_clip_comes_from_core_open_clip_and_is_referenced_by_file() -> None:
    model = chain(upto="prior")
    assert type(model.clip).__name__ == "OpenCLIPBackbone"
    state = model.state_dict()
    assert not any(k.startswith("clip.clip.") for k in state)
    assert state["_extra_state"]["file"].endswith(clip_checkpoint().split("/")[-1])


def test_missing_prompts_and_a_non_clip_component_are_explained() -> None:
    with pytest.raises(ComponentError, match="no prompts"):
        ExplicitPrior(ExplicitPriorParams(**prior_params(prompts={"MA": ["red dots"]})), CTX)
    params = ExplicitPriorParams(
        **prior_params(clip_component="core.mlp", clip={"in_features": 3}, clip_file=None)
    )
    with pytest.raises(Exception, match="clip"):
        ExplicitPrior(params, CTX.replace(data=CTX.data.replace(num_classes=2)))


def test_full_preprocessing_of_skimage_retina() -> None:
    from skimage import data

    retina = data.retina()
    assert retina.shape == (1411, 1411, 3)
    image = sam_preprocess(retina, 1024)
    assert image.shape == (3, 1024, 1024) and torch.isfinite(image).all()
    mean = torch.tensor([0.481, 0.458, 0.408]).view(1, 3, 1, 1)
    std = torch.tensor([0.269, 0.261, 0.276]).view(1, 3, 1, 1)
    clip_input = clip_branch_input(image[None], 448, mean, std)
    assert clip_input.shape == (1, 3, 448, 448) and torch.isfinite(clip_input).all()
    # a non-square image is resized on its longest side and padded with SAM's zero
    wide = sam_preprocess(retina[:700], 1024)
    assert wide.shape == (3, 1024, 1024) and float(wide[:, 600:].abs().max()) == 0.0


def test_the_encoder_and_prior_agree_on_the_token_grid() -> None:
    assert encoder().grid == chain(upto="prior").prior_size == 8
