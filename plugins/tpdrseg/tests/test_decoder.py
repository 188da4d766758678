"""Spec check 4: prompt-generator and decoder contract, batching without the B^2 repeat."""

from __future__ import annotations

import pytest
import torch
from _tiny import CTX, batch, chain, tiny_sam
from asklepios_sdk import WeightsError
from asklepios_tpdrseg.decoder import MaskDecoderHead
from asklepios_tpdrseg.params import MaskDecoderHeadParams


def test_prompt_and_mask_shapes_of_the_tiny_model() -> None:
    out = chain()(batch(3))
    assert out["dense_prompt"].shape == (3, 32, 8, 8)
    assert out["sparse_prompt"].shape == (3, 32, 32)
    assert out["low_res_logits"].shape == (3, 1, 32, 32)
    assert out["logits"].shape == (3, 1, 128, 128)


def test_a_batch_of_two_equals_the_two_images_alone() -> None:
    model = chain().eval()
    data = batch(2, seed=5)
    with torch.no_grad():
        together = model(data)["logits"]
        alone = [model({k: v[i : i + 1] for k, v in data.items()})["logits"] for i in range(2)]
    torch.testing.assert_close(together, torch.cat(alone), atol=1e-5, rtol=0)


def test_sams_own_batched_call_is_the_pitfall_the_head_avoids() -> None:
    decoder = tiny_sam().mask_decoder
    embeddings = torch.randn(2, 32, 8, 8)
    pe = torch.randn(1, 32, 8, 8)
    with pytest.raises(RuntimeError):  # B^2 = 4 copies of the embedding + 2 dense prompts
        decoder(embeddings, pe, torch.randn(2, 32, 32), torch.randn(2, 32, 8, 8), False)


def test_the_head_uses_sams_decoder_weights_and_positional_encoding() -> None:
    sam = tiny_sam()
    model = chain()
    head = model
    torch.testing.assert_close(head.dense_pe(), sam.prompt_encoder.get_dense_pe())
    for (name, ours), theirs in zip(
        head.decoder.state_dict().items(), sam.mask_decoder.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs), name
    features, sparse, dense = (
        torch.randn(1, 32, 8, 8),
        torch.randn(1, 5, 32),
        torch.randn(1, 32, 8, 8),
    )
    with torch.no_grad():
        ours, _ = head.decode(features, sparse, dense)
        theirs, _ = sam.mask_decoder(
            features, sam.prompt_encoder.get_dense_pe(), sparse, dense, False
        )
    torch.testing.assert_close(ours, theirs)


def test_the_decoder_trains_and_the_prompt_generator_gets_gradients() -> None:
    model = chain()
    model(batch(2))["logits"].sum().backward()
    generator = model.model
    assert float(generator.dense.weight.grad.abs().sum()) > 0
    assert float(generator.sparse.weight.grad.abs().sum()) > 0
    assert all(p.grad is not None for p in model.decoder.parameters() if p.requires_grad)


def test_the_head_needs_weights_or_random_init() -> None:
    with pytest.raises(WeightsError, match="checkpoint"):
        MaskDecoderHead(MaskDecoderHeadParams(), CTX)
