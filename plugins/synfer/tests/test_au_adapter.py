"""Spec §5.1: AU adapter shapes and initialisation, the decoupled attention against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_synfer.au_adapter import (
    AUAdapter,
    AUProjector,
    DecoupledAttnProcessor,
    DecoupledKV,
    install_processors,
)
from asklepios_synfer.ldm import LatentDiffusion
from asklepios_synfer.params import AUAdapterParams, LatentDiffusionParams
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

TEXT = 77


def _toy_attention(dim: int = 32, heads: int = 2) -> Attention:
    torch.manual_seed(0)
    attn = Attention(query_dim=dim, cross_attention_dim=dim, heads=heads, dim_head=dim // heads)
    return attn.eval()


def _processor(attn: Attention, scale: float, n_tokens: int = 1) -> DecoupledAttnProcessor:
    dim = attn.to_k.weight.shape[1]
    kv = DecoupledKV(dim, attn.to_k.weight.shape[0])
    with torch.no_grad():
        kv.to_k_ip.weight.copy_(attn.to_k.weight)
        kv.to_v_ip.weight.copy_(attn.to_v.weight)
    return DecoupledAttnProcessor(kv, n_tokens, scale, TEXT)


def test_the_projector_maps_41_aus_to_one_token_of_the_text_width() -> None:
    projector = AUProjector(41, 32)
    assert projector(torch.zeros(5, 41)).shape == (5, 1, 32)
    deep = AUProjector(41, 32, n_tokens=4, depth=3, hidden=64)
    assert deep(torch.ones(2, 41)).shape == (2, 4, 32)
    assert sum(isinstance(m, torch.nn.Linear) for m in deep.modules()) == 3


def test_the_au_keys_and_values_start_as_copies_of_the_text_ones() -> None:
    unet = LatentDiffusion(LatentDiffusionParams(), BuildContext()).unet
    layers, width = install_processors(unet, AUAdapterParams(), TEXT)
    attn2 = [m for n, m in unet.named_modules() if n.endswith("attn2")]
    assert len(layers) == len(attn2) > 0 and width == 32
    for kv, attn in zip(layers, attn2, strict=True):
        assert torch.equal(kv.to_k_ip.weight, attn.to_k.weight)
        assert torch.equal(kv.to_v_ip.weight, attn.to_v.weight)
        assert kv.to_k_ip.bias is None and kv.to_v_ip.bias is None
        assert isinstance(attn.processor, DecoupledAttnProcessor)
    for name, module in unet.named_modules():
        if name.endswith("attn1"):
            assert not isinstance(module.processor, DecoupledAttnProcessor)
    assert not any("to_k_ip" in k for k in unet.state_dict())  # the UNet's own weights unchanged


def test_scale_zero_is_plain_text_cross_attention_over_the_first_77_tokens() -> None:
    attn = _toy_attention()
    hidden = torch.randn(2, 10, 32)
    context = torch.randn(2, TEXT + 1, 32)
    with torch.no_grad():
        ours = _processor(attn, 0.0)(attn, hidden, context)
        plain = AttnProcessor2_0()(attn, hidden, context[:, :TEXT])
    assert torch.allclose(ours, plain, atol=1e-6)


def test_an_all_zero_au_token_adds_exactly_nothing() -> None:
    attn = _toy_attention()
    hidden = torch.randn(2, 10, 32)
    context = torch.cat([torch.randn(2, TEXT, 32), torch.zeros(2, 1, 32)], dim=1)
    with torch.no_grad():
        with_au = _processor(attn, 1.0)(attn, hidden, context)
        without = _processor(attn, 0.0)(attn, hidden, context)
    assert torch.equal(with_au, without)


def _np_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
    """Multi-head softmax(QKᵀ/√d)V, one sample, written from the formula."""
    d = q.shape[1] // heads
    out = []
    for h in range(heads):
        qh, kh, vh = (x[:, h * d : (h + 1) * d] for x in (q, k, v))
        scores = qh @ kh.T / np.sqrt(d)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        out.append(weights @ vh)
    return np.concatenate(out, axis=1)


def test_decoupled_attention_matches_a_numpy_transcription() -> None:
    attn = _toy_attention()
    processor = _processor(attn, 0.7, n_tokens=2)
    with torch.no_grad():
        processor.kv.to_k_ip.weight.normal_()  # trained weights differ from to_k
        hidden = torch.randn(1, 6, 32)
        context = torch.randn(1, TEXT + 2, 32)
        ours = processor(attn, hidden, context)[0].double().numpy()
    w = {n: p.detach().double().numpy() for n, p in attn.named_parameters()}
    kw = processor.kv.to_k_ip.weight.detach().double().numpy()
    vw = processor.kv.to_v_ip.weight.detach().double().numpy()
    x, c = hidden[0].double().numpy(), context[0].double().numpy()
    q = x @ w["to_q.weight"].T
    text, au = c[:TEXT], c[TEXT:]
    mixed = _np_attention(q, text @ w["to_k.weight"].T, text @ w["to_v.weight"].T, 2)
    mixed += 0.7 * _np_attention(q, au @ kw.T, au @ vw.T, 2)
    expected = mixed @ w["to_out.0.weight"].T + w["to_out.0.bias"]
    assert np.allclose(ours, expected, atol=1e-5)


def test_the_adapter_trains_only_its_projector_and_kv_pairs_and_checks_the_context() -> None:
    ldm = LatentDiffusion(LatentDiffusionParams(), BuildContext())
    adapter = AUAdapter(AUAdapterParams(), BuildContext()).wrap(ldm)
    own = {k for k in adapter.state_dict() if not k.startswith("model.")}
    assert own and all(k.startswith(("image_proj.", "ip_adapter.")) for k in own)
    batch = ldm.example_batch(BuildContext())
    out = adapter(batch)
    out["logits"].pow(2).mean().backward()
    grads = {n for n, p in adapter.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith(("image_proj.", "ip_adapter.")) for n in grads)
    with pytest.raises(ComponentError, match="expected 16 text \\+ 1 AU tokens"):
        ldm(batch)  # conditioning without the AU tokens is refused, not mis-split


def test_a_checkpoint_in_the_reproduction_layout_loads(tmp_path) -> None:
    ldm = LatentDiffusion(LatentDiffusionParams(), BuildContext())
    source = AUAdapter(AUAdapterParams(), BuildContext()).wrap(ldm)
    with torch.no_grad():
        for p in list(source.image_proj.parameters()) + list(source.ip_adapter.parameters()):
            p.normal_()
    # IP-Adapter indexes its ModuleList over all processors: attn1 entries are empty (odd slots)
    theirs = {
        f"{2 * i + 1}.{k}": v
        for i, kv in enumerate(source.ip_adapter)
        for k, v in kv.state_dict().items()
    }
    path = tmp_path / "au_adapter.bin"
    torch.save({"image_proj": source.image_proj.state_dict(), "ip_adapter": theirs}, path)
    other = LatentDiffusion(LatentDiffusionParams(), BuildContext())
    loaded = AUAdapter(AUAdapterParams(checkpoint=str(path)), BuildContext()).wrap(other)
    for a, b in zip(source.ip_adapter.parameters(), loaded.ip_adapter.parameters(), strict=True):
        assert torch.equal(a, b)
    au = torch.ones(1, 41)
    assert torch.equal(source.tokens(au), loaded.tokens(au))
