"""panderm.checkpoint: the released layout into the backbone and into timm (§10.2, §10.3)."""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path

import pytest
import torch
from _tiny import TINY, panderm_release, perturbed_state, tiny_ctx
from asklepios_panderm.checkpoint import PanDermCheckpoint, select_encoder_state
from asklepios_panderm.hooks import record_metadata
from asklepios_panderm.params import PanDermCheckpointParams, PanDermViTParams
from asklepios_panderm.vit import PanDermViT
from asklepios_sdk import WeightsError
from timm.models.vision_transformer import VisionTransformer
from torch import nn


class _TimmHolder(nn.Module):
    """A plain timm ViT inside a model, as core.timm holds one."""

    def __init__(self, pool: str = "token") -> None:
        super().__init__()
        self.model = VisionTransformer(
            img_size=32,
            patch_size=16,
            embed_dim=64,
            depth=2,
            num_heads=4,
            qkv_bias=True,
            init_values=1.0,
            num_classes=0,
            global_pool=pool,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
        )

    def forward(self, batch):
        return {"logits": self.model(batch["image"])}


def _source(seed: int = 0) -> tuple[PanDermViT, dict[str, torch.Tensor]]:
    """A tiny PanDerm backbone (native blocks) with perturbed weights, and its release dict."""
    torch.manual_seed(seed)
    source = PanDermViT(PanDermViTParams(**TINY, impl="native"), tiny_ctx())
    source.encoder.load_state_dict(perturbed_state(source.encoder, seed))
    return source.eval(), panderm_release(source.encoder.state_dict())


def _load(model: nn.Module, path: Path, **params) -> PanDermCheckpoint:
    adapter = PanDermCheckpoint(PanDermCheckpointParams(path=str(path), **params), tiny_ctx())
    adapter.wrap(model)
    return adapter.eval()


@pytest.mark.parametrize("impl", ["timm", "native"])
def test_release_round_trips_into_the_backbone_and_into_timm(tmp_path: Path, impl: str) -> None:
    """Acceptance check 2."""
    source, release = _source()
    path = tmp_path / "panderm_ll_data6_checkpoint-499.pth"
    torch.save(release, path)
    gammas = [k for k in release if k.endswith("gamma_1")]
    assert gammas and all(
        not torch.allclose(release[k], torch.full_like(release[k], 0.1)) for k in gammas
    )

    backbone = PanDermViT(PanDermViTParams(**TINY, impl=impl), tiny_ctx())
    a = _load(backbone, path)
    plain = _TimmHolder()
    b = _load(plain, path, target="timm")
    for adapter in (a, b):
        assert adapter.record["missing_keys"] == []
        assert adapter.record["unexpected_keys"] == []  # decoder.*, teacher.*, mask_token dropped
    # 15 tensors per block + 6 (PanDerm names); timm merges q_bias and v_bias into qkv.bias
    assert a.record["loaded"] == (36 if impl == "native" else 34) and b.record["loaded"] == 34
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        f_a = a({"image": images})["features"]
        f_b = b({"image": images})["logits"]
        f_src = source({"image": images})["features"]
    assert float((f_a - f_b).abs().max()) < 1e-5
    assert plain.model.pos_embed.requires_grad is False
    assert float((f_a - f_src).abs().max()) < 1e-5


def test_an_unprefixed_dict_loads_and_a_dict_without_backbone_keys_fails(tmp_path: Path) -> None:
    _, release = _source()
    bare = {k.removeprefix("encoder."): v for k, v in release.items() if k.startswith("encoder.")}
    torch.save(bare, tmp_path / "bare.pth")
    model = PanDermViT(PanDermViTParams(**TINY), tiny_ctx())
    assert _load(model, tmp_path / "bare.pth").record["loaded"] == 34
    junk = {"decoder.head.weight": torch.zeros(2), "teacher.x": torch.zeros(1)}
    torch.save(junk, tmp_path / "junk.pth")
    with pytest.raises(WeightsError, match=r"junk\.pth.*no PanDerm backbone tensor"):
        _load(PanDermViT(PanDermViTParams(**TINY), tiny_ctx()), tmp_path / "junk.pth")


def test_prefix_is_stripped_once_and_anchored() -> None:
    state = {
        "encoder.blocks.0.norm1.weight": torch.ones(1),
        "alignment_encoder.blocks.0.norm1.weight": torch.zeros(1),
        "encoder_to_regresser.weight": torch.zeros(1),
        "encoder.encoder.x": torch.zeros(1),
    }
    assert sorted(select_encoder_state(state)) == ["blocks.0.norm1.weight", "encoder.x"]


def test_nested_checkpoints_and_safetensors_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    _, release = _source()
    torch.save({"model": release, "epoch": 499}, tmp_path / "nested.pth")
    save_file(release, str(tmp_path / "flat.safetensors"))
    for name in ("nested.pth", "flat.safetensors"):
        model = PanDermViT(PanDermViTParams(**TINY), tiny_ctx())
        assert _load(model, tmp_path / name).record["loaded"] == 34


def test_missing_tensors_and_a_wrong_variant_are_named(tmp_path: Path) -> None:
    _, release = _source()
    partial = {k: v for k, v in release.items() if "blocks.1.mlp" not in k}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(
        WeightsError, match=r"partial\.pth.*missing backbone tensors.*blocks\.1\.mlp"
    ):
        _load(PanDermViT(PanDermViTParams(**TINY), tiny_ctx()), tmp_path / "partial.pth")
    loose = _load(
        PanDermViT(PanDermViTParams(**TINY), tiny_ctx()), tmp_path / "partial.pth", strict=False
    )
    assert len(loose.record["missing_keys"]) == 4
    torch.save(release, tmp_path / "ok.pth")
    wide = PanDermViT(PanDermViTParams(**{**TINY, "embed_dim": 32}), tiny_ctx())
    with pytest.raises(WeightsError, match="shape"):
        _load(wide, tmp_path / "ok.pth")
    deep = PanDermViT(PanDermViTParams(**{**TINY, "depth": 3}), tiny_ctx())
    with pytest.raises(WeightsError, match=r"blocks\.2"):
        _load(deep, tmp_path / "ok.pth")


def test_sha256_is_checked_and_recorded(tmp_path: Path) -> None:
    _, release = _source()
    path = tmp_path / "ckpt.pth"
    torch.save(release, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    adapter = _load(PanDermViT(PanDermViTParams(**TINY), tiny_ctx()), path, sha256=digest)
    assert adapter.record["sha256"] == digest and adapter.record["path"] == str(path)

    class Run:
        output_dir = ""

    assert adapter.record in record_metadata(Run())["checkpoints"]  # type: ignore[arg-type,index]
    Run.output_dir = str(tmp_path / "another-run")
    assert record_metadata(Run()) is None  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match="sha256"):
        _load(PanDermViT(PanDermViTParams(**TINY), tiny_ctx()), path, sha256="0" * 64)
    with pytest.raises(WeightsError, match="not found"):
        _load(PanDermViT(PanDermViTParams(**TINY), tiny_ctx()), tmp_path / "none.pth")


@pytest.mark.parametrize("impl", ["timm", "native"])
def test_mean_pool_takes_fc_norm_from_the_checkpoint_norm(tmp_path: Path, impl: str) -> None:
    """Acceptance check 3: fc_norm is initialised from the checkpoint's norm.* (also in timm)."""
    source, release = _source()
    torch.save(release, tmp_path / "ckpt.pth")
    model = _load(
        PanDermViT(PanDermViTParams(**TINY, pool="mean", impl=impl), tiny_ctx()),
        tmp_path / "ckpt.pth",
    )
    encoder = model.model.encoder
    torch.testing.assert_close(encoder.fc_norm.weight, release["encoder.norm.weight"])
    timm_mean = _load(_TimmHolder(pool="avg"), tmp_path / "ckpt.pth", target="timm")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = source.encoder._tokens(images)[0]
        ln = nn.LayerNorm(64, eps=1e-6)
        ln.weight.copy_(release["encoder.norm.weight"])
        ln.bias.copy_(release["encoder.norm.bias"])
        expected = ln(tokens[:, 1:].mean(dim=1))
        torch.testing.assert_close(
            model({"image": images})["features"], expected, atol=1e-5, rtol=1e-5
        )
        torch.testing.assert_close(
            timm_mean({"image": images})["logits"], expected, atol=1e-5, rtol=1e-5
        )


def test_targets_must_exist_in_the_model(tmp_path: Path) -> None:
    _, release = _source()
    torch.save(release, tmp_path / "ckpt.pth")
    with pytest.raises(Exception, match="target 'panderm' needs"):
        _load(nn.Sequential(nn.Linear(2, 2)), tmp_path / "ckpt.pth")
    with pytest.raises(Exception, match="no timm VisionTransformer"):
        _load(nn.Sequential(nn.Linear(2, 2)), tmp_path / "ckpt.pth", target="timm")
