"""Spec check 3: exact parameter accounting on the real ViT-B configuration (random weights)."""

from __future__ import annotations

import pytest
from asklepios_sdk import BuildContext, EmptyParams
from asklepios_tpdrseg.decoder import (
    MaskDecoderHead,
    PromptGenerator,
    prompt_generator_parameter_count,
)
from asklepios_tpdrseg.encoder import SamImageEncoder
from asklepios_tpdrseg.injector import Injector, injector_parameter_count
from asklepios_tpdrseg.params import InjectorParams, MaskDecoderHeadParams, SamImageEncoderParams


def _numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _vit_b_encoder_count(width=768, depth=12, grid=64, window=14, heads=12, out=256) -> int:
    """Count SAM ViT-B encoder parameters from the layer shapes (segment_anything 1.0)."""
    head = width // heads
    patch = 3 * 16 * 16 * width + width
    pos = grid * grid * width
    per_block = (
        2 * 2 * width  # two LayerNorms
        + width * 3 * width
        + 3 * width  # qkv
        + width * width
        + width  # proj
        + width * 4 * width
        + 4 * width
        + 4 * width * width
        + width  # MLP
    )
    rel = sum(2 * (2 * (grid if i in (2, 5, 8, 11) else window) - 1) * head for i in range(depth))
    neck = width * out + 2 * out + out * out * 9 + 2 * out
    return patch + pos + depth * per_block + rel + neck


@pytest.mark.slow
def test_trainable_and_total_counts_of_the_vit_b_model() -> None:
    from segment_anything import sam_model_registry

    sam = sam_model_registry["vit_b"](checkpoint=None)
    sam_total = _numel(sam)
    assert _numel(sam.image_encoder) == _vit_b_encoder_count()

    ctx = BuildContext()
    encoder = SamImageEncoder(SamImageEncoderParams(random_init=True), ctx)
    model = Injector(InjectorParams(), ctx).wrap(encoder)
    model = PromptGenerator(EmptyParams(), ctx).wrap(model)
    model = MaskDecoderHead(MaskDecoderHeadParams(random_init=True), ctx).wrap(model)

    injectors = 12 * injector_parameter_count(768, 768)
    generator = prompt_generator_parameter_count(256, 64 * 64)
    assert injectors == 12 * (3 * (768 * 768 + 768) + 1) == 21_261_324
    assert generator == 256 * 256 + 256 + 4096 * 256 + 256 == 1_114_624
    # one mask per image: the three multimask hypernetworks and the IoU head stay frozen
    unused_heads = sum(_numel(m) for m in sam.mask_decoder.output_hypernetworks_mlps[1:])
    unused_heads += _numel(sam.mask_decoder.iou_prediction_head)
    decoder = _numel(sam.mask_decoder) - unused_heads
    trainable = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    assert sum(trainable.values()) == injectors + generator + decoder
    # SAM's prompt encoder is used only for its (buffer) positional encoding, so its point and
    # mask embeddings are not part of the model
    unused = _numel(sam.prompt_encoder)
    assert _numel(model) == sam_total - unused + injectors + generator
    assert _numel(encoder) == _numel(sam.image_encoder)
    # the re-implementation's figures (whole decoder trainable): 26,434,288 trainable once
    # deduplicated; its per-module 'image_encoder' line (25,319,664) also counted the decoder
    assert injectors + generator + decoder + unused_heads == 26_434_288
    assert injectors + decoder + unused_heads == 25_319_664
