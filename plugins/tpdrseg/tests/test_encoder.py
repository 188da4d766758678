"""Spec check 1 (identity at initialisation: catches a missing pos_embed) and SAM loading."""

from __future__ import annotations

import pytest
import torch
from _tiny import CTX, batch, chain, encoder, sam_checkpoint, tiny_sam
from asklepios_sdk import WeightsError
from asklepios_tpdrseg.encoder import SamImageEncoder
from asklepios_tpdrseg.params import SamImageEncoderParams


def test_the_tiny_sam_has_random_position_tables() -> None:
    image_encoder = tiny_sam().image_encoder
    assert image_encoder.pos_embed.abs().sum() > 0
    assert all(p.abs().sum() > 0 for n, p in image_encoder.named_parameters() if "rel_pos" in n)


def test_the_encoder_loads_sam_weights_and_equals_sams_own_forward() -> None:
    reference = tiny_sam().image_encoder
    image = batch(2)["image"]
    with torch.no_grad():
        ours = encoder()({"image": image})["features"]
        torch.testing.assert_close(ours, reference(image), atol=1e-6, rtol=0)


def test_identity_at_initialisation_with_random_pos_embed_and_any_prior() -> None:
    """With every gamma = 0 the injected encoder is SAM's own forward, whatever the prior."""
    reference = tiny_sam().image_encoder
    model = chain(upto="injector")
    injected = model.model.model  # injector -> explicit prior -> encoder
    assert isinstance(injected, SamImageEncoder)
    image = batch(2)["image"]
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        expected = reference(image)
        for _ in range(2):
            prior = torch.rand(2, 1, 8, 8, generator=gen)
            out = injected.encode(image, {"prior": prior})
            torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
        # the whole chain (explicit prior computed from CLIP) gives the same embedding
        torch.testing.assert_close(model(batch(2))["features"], expected, atol=1e-6, rtol=0)


def test_skipping_pos_embed_would_be_caught() -> None:
    """The re-implementation's wrapper (no pos_embed) differs from SAM once pos_embed != 0."""
    sam_encoder = tiny_sam().image_encoder
    image = batch(1)["image"]
    with torch.no_grad():
        x = sam_encoder.patch_embed(image)
        for block in sam_encoder.blocks:
            x = block(x)
        buggy = sam_encoder.neck(x.permute(0, 3, 1, 2))
        assert (buggy - sam_encoder(image)).abs().max() > 1e-3


def test_the_encoder_is_frozen_and_stays_in_eval_mode() -> None:
    model = encoder()
    model.train()
    assert not any(p.requires_grad for p in model.parameters())
    assert not model.encoder.training


def test_no_checkpoint_and_no_random_init_is_an_error() -> None:
    with pytest.raises(WeightsError, match="checkpoint"):
        SamImageEncoder(SamImageEncoderParams(img_size=128, embed_dim=64, depth=2), CTX)
    with pytest.raises(WeightsError, match="does not exist"):
        SamImageEncoder(SamImageEncoderParams(checkpoint="/nonexistent/sam.pth"), CTX)


def test_a_checkpoint_of_another_size_names_the_mismatch() -> None:
    params = SamImageEncoderParams(checkpoint=sam_checkpoint(), img_size=128, embed_dim=32, depth=2)
    with pytest.raises(WeightsError, match="does not fit"):
        SamImageEncoder(params, CTX)


def test_wrong_image_size_says_how_to_fix_it() -> None:
    with pytest.raises(Exception, match=r"\(B, 3, 128, 128\)"):
        encoder()({"image": torch.zeros(1, 3, 64, 64)})
