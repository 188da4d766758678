"""Spec check 3: exact parameter accounting on the real ViT-B configuration (random weights)."""

from __future__ import annotations

import itertools

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


def _linear(fan_in: int, fan_out: int) -> int:
    return fan_in * fan_out + fan_out


def _mlp(dims: list[int]) -> int:
    return sum(_linear(a, b) for a, b in itertools.pairwise(dims))


def _sam_decoder_counts(
    width=256, depth=2, mlp=2048, downsample=2, masks=4, iou_hidden=256
) -> tuple[int, int]:
    """Count SAM's mask decoder from the layer shapes: (one-mask part, multimask + IoU heads)."""

    def attention(internal: int) -> int:  # q, k, v: width -> internal; out: internal -> width
        return 3 * _linear(width, internal) + _linear(internal, width)

    norm = 2 * width
    block = (
        attention(width)  # token self-attention
        + attention(width // downsample)  # tokens -> image
        + _linear(width, mlp)
        + _linear(mlp, width)  # MLP on the tokens
        + attention(width // downsample)  # image -> tokens
        + 4 * norm
    )
    transformer = depth * block + attention(width // downsample) + norm  # final attention
    tokens = width + masks * width  # IoU token, mask tokens
    upscaling = (
        width * (width // 4) * 2 * 2
        + width // 4  # ConvTranspose2d k2 s2
        + 2 * (width // 4)  # LayerNorm2d
        + (width // 4) * (width // 8) * 2 * 2
        + width // 8  # ConvTranspose2d k2 s2
    )
    hypernetwork = _mlp([width, width, width, width // 8])
    iou_head = _mlp([width, iou_hidden, iou_hidden, masks])
    used = transformer + tokens + upscaling + hypernetwork
    return used, (masks - 1) * hypernetwork + iou_head


def _sam_prompt_encoder_count(width=256, mask_chans=16) -> int:
    """Count SAM's point/box/mask prompt encoder from the layer shapes (its PE is a buffer)."""
    points = 4 * width + width  # four point/box-corner embeddings, not-a-point
    downscaling = (
        1 * (mask_chans // 4) * 2 * 2
        + mask_chans // 4
        + 2 * (mask_chans // 4)
        + (mask_chans // 4) * mask_chans * 2 * 2
        + mask_chans
        + 2 * mask_chans
        + _linear(mask_chans, width)  # Conv1x1 -> width
    )
    return points + downscaling + width  # no-mask embedding


@pytest.mark.slow
def test_trainable_and_total_counts_of_the_vit_b_model() -> None:
    from segment_anything import sam_model_registry

    sam = sam_model_registry["vit_b"](checkpoint=None)
    # one mask per image: the three multimask hypernetworks and the IoU head stay frozen
    decoder, unused_heads = _sam_decoder_counts()
    unused = _sam_prompt_encoder_count()  # SAM's point and mask prompts are not used
    sam_total = _vit_b_encoder_count() + unused + decoder + unused_heads
    assert _numel(sam.image_encoder) == _vit_b_encoder_count()
    assert _numel(sam.mask_decoder) == decoder + unused_heads
    assert _numel(sam.prompt_encoder) == unused == 6_220
    assert _numel(sam) == sam_total == 93_735_472

    ctx = BuildContext()
    encoder = SamImageEncoder(SamImageEncoderParams(random_init=True), ctx)
    model = Injector(InjectorParams(), ctx).wrap(encoder)
    model = PromptGenerator(EmptyParams(), ctx).wrap(model)
    model = MaskDecoderHead(MaskDecoderHeadParams(random_init=True), ctx).wrap(model)

    injectors = 12 * injector_parameter_count(768, 768)
    generator = prompt_generator_parameter_count(256, 64 * 64)
    assert injectors == 12 * (3 * (768 * 768 + 768) + 1) == 21_261_324
    assert generator == 256 * 256 + 256 + 4096 * 256 + 256 == 1_114_624
    assert decoder == 3_506_304
    hypernetwork, iou_head = (
        2 * (256 * 256 + 256) + 256 * 32 + 32,
        2 * (256 * 256 + 256) + 256 * 4 + 4,
    )
    assert unused_heads == 3 * hypernetwork + iou_head == 552_036
    trainable = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    assert sum(trainable.values()) == injectors + generator + decoder
    # SAM's prompt encoder is used only for its (buffer) positional encoding, so its point and
    # mask embeddings are not part of the model
    assert _numel(model) == sam_total - unused + injectors + generator
    assert _numel(encoder) == _numel(sam.image_encoder)
    # the re-implementation's figures (whole decoder trainable): 26,434,288 trainable once
    # deduplicated; its per-module 'image_encoder' line (25,319,664) also counted the decoder
    assert injectors + generator + decoder + unused_heads == 26_434_288
    assert injectors + decoder + unused_heads == 25_319_664
