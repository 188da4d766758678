"""Spec §5 / §12 check 4: multi-scale PatchGAN shapes, parameter count and GAN terms."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from asklepios_knowledge_mask.discriminator import (
    KnowledgeAwareDiscriminator,
    MultiscaleDiscriminator,
    feature_matching,
    lsgan,
)
from asklepios_knowledge_mask.params import KnowledgeAwareDiscriminatorParams
from asklepios_sdk import BuildContext

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def _conv_out(size: int, stride: int) -> int:
    return (size + 2 * 2 - 4) // stride + 1


def test_parameter_count_per_scale() -> None:
    d = MultiscaleDiscriminator()
    widths = [6, 64, 128, 256, 512, 1]
    expected = sum(a * b * 16 + b for a, b in itertools.pairwise(widths))
    for scale in d.scales:
        assert sum(p.numel() for p in scale.parameters()) == expected


def test_shapes_of_every_scale_and_block() -> None:
    d = MultiscaleDiscriminator(ndf=8)
    out = d(torch.randn(2, 6, 64, 64))
    assert len(out) == 2 and all(len(s) == 5 for s in out)
    size = 64
    for scale in out:
        sides = []
        s = size
        for stride in (2, 2, 2, 1, 1):
            s = _conv_out(s, stride)
            sides.append(s)
        assert [t.shape[-1] for t in scale] == sides
        assert [t.shape[1] for t in scale] == [8, 16, 32, 64, 1]
        size = (size + 2 - 3) // 2 + 1  # AvgPool 3x3, stride 2, pad 1


def test_lsgan_and_feature_matching_against_numpy() -> None:
    gen = torch.Generator().manual_seed(0)
    fake = [[torch.randn(1, 2, 3, 3, generator=gen) for _ in range(3)] for _ in range(2)]
    real = [[torch.randn(1, 2, 3, 3, generator=gen) for _ in range(3)] for _ in range(2)]
    expected_real = sum(np.mean((s[-1].numpy() - 1.0) ** 2) for s in fake)
    expected_fake = sum(np.mean(s[-1].numpy() ** 2) for s in fake)
    assert float(lsgan(fake, True)) == pytest.approx(expected_real, rel=1e-6)
    assert float(lsgan(fake, False)) == pytest.approx(expected_fake, rel=1e-6)
    factor = 0.5 * (4 / (3 + 1)) * 10  # = 5, as in the spec
    expected_fm = sum(
        factor * np.mean(np.abs(f.numpy() - r.numpy()))
        for sf, sr in zip(fake, real, strict=True)
        for f, r in zip(sf[:-1], sr[:-1], strict=True)
    )
    assert float(feature_matching(fake, real, n_layers=3)) == pytest.approx(expected_fm, rel=1e-6)


def test_knowledge_aware_use_is_the_same_network_on_masked_pairs() -> None:
    d = KnowledgeAwareDiscriminator(KnowledgeAwareDiscriminatorParams(ndf=8), CTX)
    pair = torch.randn(1, 6, 32, 32)
    mask = (torch.rand(1, 1, 32, 32) > 0.5).float()
    masked = d({"image": pair, "knowledge_mask": mask})
    direct = d({"image": pair * mask})
    assert torch.equal(masked["logits"], direct["logits"])
    assert masked["features"].shape == (1, 64)
    zero = d({"image": pair, "knowledge_mask": torch.zeros_like(mask)})
    assert torch.equal(zero["logits"], d({"image": torch.zeros_like(pair)})["logits"])
