"""static_tokenizer / chunk_cnn adapters: composed with pdf_head they are the backbone's model."""

from __future__ import annotations

import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from asklepios_unisurv.adapters import ChunkCNNAdapter, StaticTokenizerAdapter
from asklepios_unisurv.params import (
    ChunkCNNAdapterParams,
    PDFHeadAdapterParams,
    StaticTokenizerAdapterParams,
    UniSurvBackboneParams,
)
from asklepios_unisurv.transformer import PDFHeadAdapter, UniSurvBackbone
from pydantic import ValidationError
from torch import nn

TINY = {"d_model": 8, "num_layers": 1, "num_heads": 2, "d_ff": 8, "dropout": 0.0}
CNN = {"in_channels": 2, "width": 15, "time_period": 4}
F, T = 5, 12


def _ctx(t_max=T):
    return BuildContext(data=DataFacts(task="survival", num_features=F, extras={"t_max": t_max}))


class _Identity(nn.Module):
    """A tabular 'feature extractor' that returns its input, so tokens see the raw features."""

    feature_dim = F

    def forward(self, batch):
        return {"logits": batch["image"][:, :1], "features": batch["image"]}


def _batch(b=3):
    gen = torch.Generator().manual_seed(0)
    return {
        "image": torch.randn(b, F, generator=gen),
        "longitudinal": torch.rand(b, CNN["in_channels"], T, CNN["width"], generator=gen),
    }


def _compose(order):
    builders = {
        "static": lambda: StaticTokenizerAdapter(StaticTokenizerAdapterParams(), _ctx()),
        "cnn": lambda: ChunkCNNAdapter(ChunkCNNAdapterParams(**CNN), _ctx()),
        "head": lambda: PDFHeadAdapter(PDFHeadAdapterParams(**TINY), _ctx()),
    }
    model, parts = _Identity(), {}
    for name in order:
        parts[name] = builders[name]()
        model = parts[name].wrap(model)
    return model.eval(), parts


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("order", [("static", "cnn", "head"), ("cnn", "static", "head")])
def test_static_and_cnn_adapters_under_pdf_head_equal_the_longitudinal_backbone(order):
    backbone = UniSurvBackbone(UniSurvBackboneParams(**TINY, **CNN, longitudinal=True), _ctx())
    backbone.eval()
    model, parts = _compose(order)
    parts["static"].tokenizer.load_state_dict(backbone.tokenizer.state_dict())
    parts["cnn"].cnn.load_state_dict(backbone.cnn.state_dict())
    parts["head"].encoder.load_state_dict(backbone.encoder.state_dict())
    assert _count(model) == _count(backbone)
    batch = _batch()
    out = model(batch)
    assert "tokens" not in out
    torch.testing.assert_close(out["logits"], backbone(batch)["logits"], rtol=0, atol=0)
    torch.testing.assert_close(out["features"], batch["image"])


def test_static_tokenizer_under_pdf_head_equals_the_static_backbone_and_the_plain_head():
    backbone = UniSurvBackbone(UniSurvBackboneParams(**TINY), _ctx()).eval()
    model, parts = _compose(("static", "head"))
    parts["static"].tokenizer.load_state_dict(backbone.tokenizer.state_dict())
    parts["head"].encoder.load_state_dict(backbone.encoder.state_dict())
    plain = PDFHeadAdapter(PDFHeadAdapterParams(**TINY), _ctx())
    plain = plain.wrap(_Identity()).eval()
    plain.load_state_dict(
        {"tokenizer." + k: v for k, v in backbone.tokenizer.state_dict().items()}
        | {"encoder." + k: v for k, v in backbone.encoder.state_dict().items()}
    )
    batch = _batch()
    expected = backbone(batch)["logits"]
    torch.testing.assert_close(model(batch)["logits"], expected, rtol=0, atol=0)
    torch.testing.assert_close(plain(batch)["logits"], expected, rtol=0, atol=0)


def test_adapters_add_tokens_and_keep_logits_and_features():
    static, _ = _compose(("static",))
    out = static(_batch(2))
    assert out["tokens"].shape == (2, T, F) and static.token_dim == F
    torch.testing.assert_close(out["tokens"][:, 0], out["tokens"][:, -1])
    cnn, parts = _compose(("static", "cnn"))
    out = cnn(_batch(2))
    width = parts["cnn"].cnn.out_features
    assert cnn.token_dim == width + F and out["tokens"].shape == (2, T, width + F)
    assert out["logits"].shape == (2, 1) and cnn.feature_dim == F
    alone, alone_parts = _compose(("cnn",))
    alone_parts["cnn"].cnn.load_state_dict(parts["cnn"].cnn.state_dict())
    torch.testing.assert_close(alone(_batch(2))["tokens"], out["tokens"][..., :width])


def test_pdf_head_logits_train_the_token_adapters():
    model, parts = _compose(("static", "cnn", "head"))
    model.train()
    model(_batch())["logits"].sum().backward()
    assert parts["static"].tokenizer.fc.weight.grad.abs().sum() > 0
    assert parts["cnn"].cnn.conv.weight.grad.abs().sum() > 0


def test_adapter_errors_are_clear():
    with pytest.raises(ComponentError, match="feature_dim"):
        StaticTokenizerAdapter(StaticTokenizerAdapterParams(), _ctx()).wrap(nn.Linear(2, 2))
    with pytest.raises(ValidationError, match="must divide t_max"):
        ChunkCNNAdapterParams(t_max=12, time_period=5)
    with pytest.raises(ComponentError, match="time_period"):
        ChunkCNNAdapter(ChunkCNNAdapterParams(time_period=5), _ctx())
    with pytest.raises(ComponentError, match="t_max"):
        ChunkCNNAdapter(ChunkCNNAdapterParams(t_max=24), _ctx())
    model, _ = _compose(("cnn",))
    bad = _batch(2)
    bad["longitudinal"] = bad["longitudinal"][:, :, :6]
    with pytest.raises(ComponentError, match=r"\(B, 2, 12, 15\)"):
        model(bad)
    short = StaticTokenizerAdapter(StaticTokenizerAdapterParams(), _ctx(6)).wrap(_Identity())
    head = PDFHeadAdapter(PDFHeadAdapterParams(**TINY), _ctx()).wrap(short)
    with pytest.raises(ComponentError, match=r"expected \(B, 12, token_dim\)"):
        head(_batch(2))
