"""Spec §12 checks 4-5: architecture fidelity and autoregressive bookkeeping of the generator."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from asklepios_knowledge_mask.generator import (
    FundusVideoGenerator,
    GlobalGenerator,
    context_window,
    generate_video,
    overlap_average,
    sampling_probability,
    step_target,
    target_indices,
)
from asklepios_knowledge_mask.params import FundusVideoGeneratorParams
from asklepios_sdk import BuildContext, ComponentError
from torch import nn

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def _expected_generator_params(ngf: int, n_down: int = 4, n_blocks: int = 9) -> int:
    total = 6 * ngf * 49 + ngf  # conv 7x7, 6 -> ngf
    for i in range(n_down):
        cin, cout = ngf * 2**i, ngf * 2 ** (i + 1)
        total += cin * cout * 9 + cout
    c = ngf * 2**n_down
    total += n_blocks * 2 * (c * c * 9 + c)
    for i in range(n_down):
        cin = ngf * 2 ** (n_down - i)
        total += cin * (cin // 2) * 9 + cin // 2
    total += ngf * 3 * 49 + 3
    return total


@pytest.mark.parametrize("ngf", [8, 64])
def test_parameter_count_from_layout(ngf: int) -> None:
    with torch.device("meta"):  # count without allocating ~170M parameters at ngf 64
        net = GlobalGenerator(ngf=ngf)
    assert sum(p.numel() for p in net.parameters()) == _expected_generator_params(ngf)


def test_layer_order_matches_spec_indices() -> None:
    model = GlobalGenerator(ngf=8).model
    assert len(model) == 40
    kinds = {0: nn.ReflectionPad2d, 1: nn.Conv2d, 2: nn.InstanceNorm2d, 3: nn.ReLU, 39: nn.Tanh}
    kinds.update({4: nn.Conv2d, 7: nn.Conv2d, 10: nn.Conv2d, 13: nn.Conv2d, 37: nn.ReflectionPad2d})
    kinds.update({25: nn.ConvTranspose2d, 34: nn.ConvTranspose2d, 38: nn.Conv2d})
    for index, kind in kinds.items():
        assert isinstance(model[index], kind), index
    assert all(type(model[i]).__name__ == "ResnetBlock" for i in range(16, 25))
    assert model[13].stride == (2, 2) and model[38].kernel_size == (7, 7)


def test_nce_feature_shapes_at_64_and_output_range() -> None:
    with torch.device("meta"):  # shapes only: no ngf-64 weights are allocated
        net = GlobalGenerator(ngf=64, n_blocks=1)
        feats = net.encode(torch.zeros(1, 6, 64, 64), [0, 4, 8, 12, 16])
    shapes = [tuple(f.shape[1:]) for f in feats]
    assert shapes == [(6, 70, 70), (128, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4)]
    assert net.layer_channels([0, 4, 8, 12, 16]) == [6, 128, 256, 512, 1024]
    small = GlobalGenerator(ngf=8)
    out, bottleneck = small(torch.randn(2, 6, 64, 64) * 3)
    assert out.shape == (2, 3, 64, 64) and bottleneck.shape == (2, 128, 4, 4)
    assert out.abs().max() <= 1.0


def test_conv_weights_initialised_normal_002() -> None:
    convs = [m for m in GlobalGenerator(ngf=16).modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([m.weight.detach().flatten() for m in convs])
    assert abs(float(weights.std()) - 0.02) < 1e-3 and abs(float(weights.mean())) < 1e-3


def test_step_targets_context_and_overlap_counts_for_five_frames() -> None:
    m = 5
    # independent 1-based formula: Y_n = [y_{n+1}, y_{min(n+2,M)}, y_{min(n+3,M)}]
    expected = [[n + 1 - 1, min(n + 2, m) - 1, min(n + 3, m) - 1] for n in range(m)]
    assert [target_indices(n, m) for n in range(m)] == expected
    video = torch.arange(m, dtype=torch.float32)[None, :, None, None, None].expand(1, m, 3, 2, 2)
    for n in range(m):
        assert step_target(video, n)[0, :, 0, 0].tolist() == expected[n]
    for n in range(1, m):
        ctx = [n - 1, min(n, m - 1), min(n + 1, m - 1)]
        assert context_window(video, n)[0, :, 0, 0].tolist() == ctx
    # overlap: channel c of step n is frame n + c; frame j gets min(j + 1, 3) predictions
    steps = torch.rand(m, 1, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    averaged = overlap_average(steps)
    ref = np.zeros((m, 2, 2))
    counts = np.zeros(m)
    for n in range(m):
        for c in range(3):
            if n + c < m:
                ref[n + c] += steps[n, 0, c].numpy()
                counts[n + c] += 1
    assert counts.tolist() == [min(j + 1, 3) for j in range(m)]
    np.testing.assert_allclose(averaged[0].numpy(), ref / counts[:, None, None], rtol=1e-6)


def test_scheduled_sampling_probability() -> None:
    def reference(s: int) -> float:
        return 1.0 if s >= 1000 else (1 + s // 100) / (2 + s // 100)

    for s in (0, 50, 99, 100, 450, 950, 999, 1000, 5000):
        assert sampling_probability(s) == pytest.approx(reference(s))
    assert sampling_probability(50) == 0.5 and sampling_probability(450) == 5 / 6
    assert sampling_probability(950) == 10 / 11 and sampling_probability(1000) == 1.0


def test_generate_video_feeds_generated_context() -> None:
    calls: list[torch.Tensor] = []

    def step_fn(cf: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(context)
        return context[:, :3] * 0.5 + 0.1, torch.zeros(cf.shape[0], 2, 1, 1)

    cf = torch.ones(1, 3, 4, 4)
    video, features = generate_video(step_fn, cf, 4)
    assert video.shape == (1, 4, 3, 4, 4) and features.shape == (1, 2)
    assert torch.equal(calls[0], cf)
    for previous, current in itertools.pairwise(calls):
        assert torch.allclose(current, previous * 0.5 + 0.1)


def test_backbone_step_and_video_modes() -> None:
    gen = FundusVideoGenerator(FundusVideoGeneratorParams(ngf=4, n_blocks=1), CTX)
    cf = torch.rand(2, 3, 32, 32) * 2 - 1
    step = gen({"image": cf, "context": cf})
    assert step["logits"].shape == (2, 3, 32, 32) and step["features"].shape == (2, 64)
    video = gen({"image": cf, "video": torch.zeros(2, 5, 3, 32, 32)})
    assert video["video"].shape == (2, 5, 3, 32, 32)
    assert torch.equal(video["video"][:, :, 0], video["video"][:, :, 2])
    with pytest.raises(ComponentError, match="num_frames"):
        gen({"image": cf})
    with pytest.raises(ComponentError, match="input_nc"):
        FundusVideoGenerator(FundusVideoGeneratorParams(output_nc=1), CTX)
