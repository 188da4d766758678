"""panderm.vit: position table (§10.1), timm == own blocks, mean pooling (§10.3), heads, layers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _tiny import TINY, tiny_ctx
from asklepios_panderm.checkpoint import to_timm_state
from asklepios_panderm.params import PanDermViTParams
from asklepios_panderm.vit import (
    PanDermEncoder,
    PanDermViT,
    TimmPanDermEncoder,
    build_encoder,
    layer_id,
    relative_position_index,
    sincos_pos_embed,
)


@pytest.mark.parametrize("impl", ["timm", "native"])
def test_position_embedding_is_the_fixed_row_first_sincos_table(impl: str) -> None:
    """Acceptance check 1: D=8, img 32, patch 16 (2x2 grid); omega = [1, 0.01]."""
    params = PanDermViTParams(embed_dim=8, depth=1, num_heads=2, img_size=32, impl=impl)
    pos = PanDermViT(params, tiny_ctx()).encoder.pos_embed
    omega = np.array([1.0, 0.01])

    def expected(row: int, col: int) -> np.ndarray:
        r, c = row * omega, col * omega
        return np.concatenate([np.sin(r), np.cos(r), np.sin(c), np.cos(c)])

    assert torch.equal(pos[0, 0], torch.zeros(8))
    np.testing.assert_allclose(pos[0, 3].numpy(), expected(1, 0), atol=1e-5)  # row 1, col 0
    np.testing.assert_allclose(pos[0, 2].numpy(), expected(0, 1), atol=1e-5)  # row 0, col 1
    np.testing.assert_allclose(pos[0, 4].numpy(), expected(1, 1), atol=1e-5)
    assert pos.requires_grad is False
    assert pos.shape == (1, 5, 8)


def test_sincos_table_rejects_widths_not_divisible_by_four() -> None:
    with pytest.raises(Exception, match="divisible by 4"):
        sincos_pos_embed((2, 2), 6)


def _pair(pool: str, depth: int = 2, seed: int = 0) -> tuple[PanDermEncoder, TimmPanDermEncoder]:
    """Return a native and a timm encoder holding the same random (perturbed) weights."""
    torch.manual_seed(seed)
    params = PanDermViTParams(**{**TINY, "depth": depth}, impl="native")
    native = build_encoder(params, pool)
    assert isinstance(native, PanDermEncoder)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, tensor in native.state_dict().items():
            if name != "pos_embed":
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.3)
    timm_encoder = build_encoder(params.model_copy(update={"impl": "timm"}), pool)
    assert isinstance(timm_encoder, TimmPanDermEncoder)
    state = to_timm_state(native.state_dict(), fc_norm=False)
    missing, unexpected = timm_encoder.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"fc_norm.weight", "fc_norm.bias"}
    if pool == "mean":
        timm_encoder.fc_norm.load_state_dict(native.fc_norm.state_dict())  # type: ignore[union-attr]
    return native.eval(), timm_encoder.eval()


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_timm_vision_transformer_equals_the_own_blocks(pool: str) -> None:
    native, timm_encoder = _pair(pool)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = native.pooled(images), timm_encoder.pooled(images)
        tokens_a, tokens_b = native.forward_features(images), timm_encoder.forward_features(images)
        inter_a = native.intermediates(images, [0, 1])
        inter_b = timm_encoder.intermediates(images, [0, 1])
    assert a.shape == (3, 64)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tokens_a, tokens_b, atol=1e-5, rtol=1e-5)
    for x, y in zip(inter_a, inter_b, strict=True):
        assert x.shape == (3, 64, 2, 2)
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def _numpy_block(x: np.ndarray, block: torch.nn.Module, heads: int) -> np.ndarray:
    """One PanDerm block in numpy, from the formulas of §2.2."""
    w = {k: v.detach().double().numpy() for k, v in block.state_dict().items()}

    def ln(v: np.ndarray, name: str) -> np.ndarray:
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-6) * w[f"{name}.weight"] + w[f"{name}.bias"]

    tokens, dim = x.shape
    hd = dim // heads
    h = ln(x, "norm1")
    bias = np.concatenate([w["attn.q_bias"], np.zeros(dim), w["attn.v_bias"]])
    qkv = h @ w["attn.qkv.weight"].T + bias
    q, k, v = (qkv[:, i * dim : (i + 1) * dim].reshape(tokens, heads, hd) for i in range(3))
    scores = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    attn = scores / scores.sum(-1, keepdims=True)
    out = np.einsum("hts,shd->thd", attn, v).reshape(tokens, dim)
    out = out @ w["attn.proj.weight"].T + w["attn.proj.bias"]
    x = x + w["gamma_1"] * out
    h = ln(x, "norm2") @ w["mlp.fc1.weight"].T + w["mlp.fc1.bias"]
    h = 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))  # exact GELU
    h = h @ w["mlp.fc2.weight"].T + w["mlp.fc2.bias"]
    return x + w["gamma_2"] * h


def test_own_block_matches_a_numpy_transcription() -> None:
    native, _ = _pair("cls", depth=1)
    block = native.blocks[0]
    x = torch.randn(5, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = block(x[None].double().float())[0].double().numpy()
    np.testing.assert_allclose(ours, _numpy_block(x.double().numpy(), block, 4), atol=1e-4)


def test_relative_position_bias_starts_at_zero_and_follows_beit_indices() -> None:
    index = relative_position_index((2, 2))
    distances = 3 * 3 + 3
    assert index.shape == (5, 5)
    assert index[0, 0] == distances - 1 and index[0, 1] == distances - 3
    assert index[1, 0] == distances - 2
    # token (r1, c1) -> (r2, c2) maps to (r1 - r2 + 1) * 3 + (c1 - c2 + 1)
    assert index[1, 4] == (0 - 1 + 1) * 3 + (0 - 1 + 1) and index[4, 1] == 2 * 3 + 2
    torch.manual_seed(0)
    plain = PanDermViT(PanDermViTParams(**TINY, impl="native"), tiny_ctx())
    torch.manual_seed(0)
    rel = PanDermViT(PanDermViTParams(**TINY, rel_pos_bias=True), tiny_ctx())
    assert rel.impl == "native"
    tables = [n for n, _ in rel.named_parameters() if "relative_position_bias_table" in n]
    assert len(tables) == 2 and rel.encoder.blocks[0].attn.relative_position_bias_table.shape == (
        12,
        4,
    )
    rel.load_state_dict(plain.state_dict(), strict=False)
    images = torch.randn(2, 3, 32, 32)
    rel.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            rel({"image": images})["features"], plain({"image": images})["features"]
        )
        rel.encoder.blocks[1].attn.relative_position_bias_table.normal_()
        changed = rel({"image": images})["features"]
    assert not torch.allclose(changed, plain({"image": images})["features"])


def test_impl_timm_refuses_what_it_cannot_reproduce() -> None:
    with pytest.raises(ValueError, match="native"):
        PanDermViTParams(**TINY, impl="timm", rel_pos_bias=True)
    assert PanDermViT(PanDermViTParams(**TINY, drop_rate=0.1), tiny_ctx()).impl == "native"
    assert PanDermViT(PanDermViTParams(**TINY), tiny_ctx()).impl == "timm"


@pytest.mark.parametrize("impl", ["timm", "native"])
def test_mean_pool_is_fc_norm_of_the_mean_patch_token(impl: str) -> None:
    """Acceptance check 3 (fc_norm from the checkpoint's norm.*: see test_checkpoint.py)."""
    model = PanDermViT(PanDermViTParams(**TINY, pool="mean", impl=impl), tiny_ctx()).eval()
    with torch.no_grad():
        model.encoder.fc_norm.weight.normal_()
        model.encoder.fc_norm.bias.normal_()
        images = torch.randn(2, 3, 32, 32)
        tokens = model.encoder.forward_features(images)
        expected = model.encoder.fc_norm(tokens[:, 1:].mean(dim=1))
        torch.testing.assert_close(model({"image": images})["features"], expected)
    assert isinstance(model.encoder.norm, torch.nn.Identity)


@pytest.mark.parametrize("impl", ["timm", "native"])
def test_mean_pool_ignores_the_cls_token_without_attention(impl: str) -> None:
    params = PanDermViTParams(**{**TINY, "depth": 0}, pool="mean", impl=impl)
    model = PanDermViT(params, tiny_ctx()).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model({"image": images})["features"]
        model.encoder.cls_token.add_(5.0)
        after = model({"image": images})["features"]
        torch.testing.assert_close(before, after, atol=0, rtol=0)
        cls_model = PanDermViT(params.model_copy(update={"pool": "cls"}), tiny_ctx()).eval()
        first = cls_model({"image": images})["features"]
        cls_model.encoder.cls_token.add_(5.0)
        assert not torch.allclose(first, cls_model({"image": images})["features"])


def test_head_init_scale_and_headless_features() -> None:
    torch.manual_seed(0)
    model = PanDermViT(PanDermViTParams(**TINY), tiny_ctx(num_classes=7))
    assert model.head.weight.shape == (7, 64)  # type: ignore[union-attr]
    weight = model.head.weight.detach()  # type: ignore[union-attr]
    assert float(weight.std()) == pytest.approx(0.02 * 0.001, rel=0.2)  # trunc-normal x init_scale
    headless = PanDermViT(PanDermViTParams(**TINY, num_classes=0), tiny_ctx())
    out = headless({"image": torch.randn(2, 3, 32, 32)})
    assert torch.equal(out["logits"], out["features"]) and headless.feature_dim == 64
    headless.reset_classifier(4)
    assert headless({"image": torch.randn(2, 3, 32, 32)})["logits"].shape == (2, 4)
    with pytest.raises(Exception, match="num_classes"):
        PanDermViT(PanDermViTParams(**TINY), tiny_ctx(num_classes=None))  # type: ignore[arg-type]


def test_init_follows_panderm() -> None:
    torch.manual_seed(0)
    encoder = build_encoder(
        PanDermViTParams(embed_dim=64, depth=4, num_heads=4, impl="native", img_size=32), "cls"
    )
    stds = [float(b.attn.proj.weight.detach().std()) for b in encoder.blocks]  # type: ignore[union-attr]
    for depth, std in enumerate(stds, start=1):  # 0.02 / sqrt(2 l), trunc-normal in [-2, 2]
        assert std == pytest.approx(0.02 / math.sqrt(2 * depth), rel=0.15)
    assert float(encoder.blocks[0].gamma_1.detach()[0]) == pytest.approx(0.1)  # type: ignore[index]
    assert not encoder.blocks[0].attn.q_bias.any()  # type: ignore[union-attr]


def test_layer_ids_for_layer_decay() -> None:
    ids = {
        "encoder.cls_token": 0,
        "encoder.pos_embed": 0,
        "encoder.patch_embed.proj.weight": 0,
        "encoder.blocks.0.attn.qkv.weight": 1,
        "encoder.blocks.11.mlp.fc2.bias": 12,
        "encoder.fc_norm.weight": 13,
        "head.weight": 13,
        "decode_head.conv_seg.weight": 13,
    }
    assert {name: layer_id(name, 12) for name in ids} == ids
