"""Spec check 2: prior semantics and gradient flow of the injector, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny import batch, chain
from asklepios_tpdrseg.injector import PriorAlignedInjector, injector_parameter_count


def _numpy_injector(x, prior, wq, bq, wk, bk, wv, bv, gamma, stride=4):
    """Transcribe spec 2.3 in numpy: x (B, h, w, C) channels-last, prior (B, 1, h, w)."""
    f = x.transpose(0, 3, 1, 2)  # (B, C, h, w)
    act = f * prior
    sub = lambda t: t[:, :, ::stride, ::stride]  # noqa: E731 - a 1x1 strided conv samples tokens
    q = np.einsum("oc,bchw->bohw", wq, sub(f)) + bq[None, :, None, None]
    k = np.einsum("oc,bchw->bohw", wk, sub(act)) + bk[None, :, None, None]
    v = np.einsum("oc,bchw->bohw", wv, sub(act)) + bv[None, :, None, None]
    b, ch, hh, ww = q.shape
    q, k, v = q.reshape(b, ch, -1), k.reshape(b, ch, -1), v.reshape(b, ch, -1)
    logits = np.einsum("bcn,bcm->bnm", q, k) / np.sqrt(ch)
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    mixed = np.einsum("bnm,bcm->bcn", attn, v).reshape(b, ch, hh, ww)
    up = torch.nn.functional.interpolate(
        torch.from_numpy(mixed), size=f.shape[-2:], mode="bilinear", align_corners=False
    ).numpy()
    return x + gamma * up.transpose(0, 2, 3, 1)


def _weights(module):
    return [
        module.query.weight[:, :, 0, 0].detach().double().numpy(),
        module.query.bias.detach().double().numpy(),
        module.key.weight[:, :, 0, 0].detach().double().numpy(),
        module.key.bias.detach().double().numpy(),
        module.value.weight[:, :, 0, 0].detach().double().numpy(),
        module.value.bias.detach().double().numpy(),
    ]


def test_the_injector_matches_a_numpy_transcription() -> None:
    torch.manual_seed(0)
    module = PriorAlignedInjector(16, 16).double()
    with torch.no_grad():
        module.gamma.fill_(0.7)
    x = torch.randn(2, 8, 8, 16, dtype=torch.float64)
    prior = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    expected = _numpy_injector(x.numpy(), prior.numpy(), *_weights(module), gamma=0.7)
    np.testing.assert_allclose(module(x, prior).detach().numpy(), expected, atol=1e-10)


def test_prior_semantics_with_gamma_one_and_zero_biases() -> None:
    torch.manual_seed(1)
    module = PriorAlignedInjector(64, 64).double()
    with torch.no_grad():
        module.gamma.fill_(1.0)
        for conv in (module.query, module.key, module.value):
            conv.bias.zero_()
    x = torch.randn(2, 8, 8, 64, dtype=torch.float64)
    zeros, ones = torch.zeros(2, 1, 8, 8).double(), torch.ones(2, 1, 8, 8).double()
    # P = 0: K = V = 0, so the added term is 0 and the output is the input
    out = module(x, zeros)
    assert out.shape == (2, 8, 8, 64)
    torch.testing.assert_close(out, x, atol=1e-12, rtol=0)
    # P = 1: a plain stride-4 self-attention residual
    weights = _weights(module)
    expected = _numpy_injector(x.numpy(), np.ones((2, 1, 8, 8)), *weights, gamma=1.0)
    np.testing.assert_allclose(module(x, ones).detach().numpy(), expected, atol=1e-10)


def test_gradients_flow_to_gamma_first_then_to_the_convs() -> None:
    model = chain(upto="injector")
    injectors = list(model.injectors)
    data = batch(2)
    model(data)["features"].sum().backward()
    for injector in injectors:
        assert float(injector.gamma.grad.abs().sum()) > 0
        for name, param in injector.named_parameters():
            if name != "gamma":
                assert param.grad is None or float(param.grad.abs().sum()) == 0, name
    encoder = model.model.model
    assert all(p.grad is None for p in encoder.parameters())
    model.zero_grad()
    with torch.no_grad():
        for injector in injectors:
            injector.gamma.fill_(0.1)
    model(data)["features"].sum().backward()
    for injector in injectors:
        for conv in (injector.query, injector.key, injector.value):
            assert float(conv.weight.grad.abs().sum()) > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_injectors_sit_after_the_listed_blocks_only() -> None:
    model = chain(injector={"layers": [1]}, upto="injector")
    assert model.layer_to_injector == {1: 0} and len(model.injectors) == 1
    calls = []
    original = model.injectors[0].forward
    model.injectors[0].forward = lambda x, p: calls.append(x.shape) or original(x, p)
    model(batch(1))
    assert calls == [(1, 8, 8, 64)]
    with pytest.raises(Exception, match="block indices"):
        chain(injector={"layers": [2]}, upto="injector")


def test_the_lighter_option_and_avgpool_keep_shapes_and_count_parameters() -> None:
    model = chain(injector={"hidden_dim": 16, "kv_downsample": "avgpool"}, upto="injector")
    injector = model.injectors[0]
    assert injector.key.stride == (1, 1) and injector.query.stride == (4, 4)
    assert sum(p.numel() for p in injector.parameters()) == injector_parameter_count(64, 16)
    with torch.no_grad():
        for item in model.injectors:
            item.gamma.fill_(1.0)
    out = model(batch(2))
    assert out["features"].shape == (2, 32, 8, 8) and torch.isfinite(out["features"]).all()


def test_avgpool_keys_see_every_token() -> None:
    torch.manual_seed(0)
    module = PriorAlignedInjector(8, 8, kv_downsample="avgpool")
    with torch.no_grad():
        module.gamma.fill_(1.0)
    x = torch.randn(1, 8, 8, 8)
    prior = torch.zeros(1, 1, 8, 8)
    prior[..., 1, 1] = 1.0  # a one-token lesion that stride-4 subsampling never sees
    sub = PriorAlignedInjector(8, 8)
    sub.load_state_dict(module.state_dict())
    assert torch.equal(sub(x, prior), sub(x, torch.zeros_like(prior)))
    assert not torch.equal(module(x, prior), module(x, torch.zeros_like(prior)))
