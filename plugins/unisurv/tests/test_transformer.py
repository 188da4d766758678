"""Time-token Transformer: shapes, analytic parameter count, LayerNorm variant, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from asklepios_unisurv.losses import MMVLoss
from asklepios_unisurv.params import MMVLossParams, PDFHeadAdapterParams, UniSurvBackboneParams
from asklepios_unisurv.transformer import OriginalLayerNorm, PDFHeadAdapter, UniSurvBackbone
from pydantic import ValidationError
from torch import nn

TINY = {"d_model": 8, "num_layers": 1, "num_heads": 2, "d_ff": 8, "dropout": 0.0}


def _ctx(num_features=5, t_max=12):
    return BuildContext(
        data=DataFacts(task="survival", num_features=num_features, extras={"t_max": t_max})
    )


def _expected_params(f, t_max, d, n, d_ff, period=None, width=30, channels=3, final_norm=False):
    """Count parameters from the layer list of spec §3.4 (every linear with bias, LN γ and β)."""
    del t_max
    linear = lambda i, o: i * o + o  # noqa: E731
    norm = lambda k: 2 * k  # noqa: E731
    total = linear(f, f)
    d_in = f
    if period is not None:
        total += channels * 3 * 10 + 1
        d_in += (period - 2) * ((width - 10) // 5 + 1)
    total += linear(d_in, d) + norm(d)
    layer = 4 * linear(d, d) + linear(d, d_ff) + linear(d_ff, d) + 2 * norm(d)
    total += n * layer
    total += linear(d, d // 2) + norm(d // 2) + linear(d // 2, 1)
    return total + (norm(d) if final_norm else 0)


def _count(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_size_parameter_count_with_and_without_the_cnn_branch():
    paper = {"d_model": 512, "num_layers": 4, "num_heads": 8, "d_ff": 2048, "t_max": 96}
    static = UniSurvBackbone(UniSurvBackboneParams(**paper), _ctx(10, 96))
    assert _count(static) == _expected_params(10, 96, 512, 4, 2048)
    longi = UniSurvBackbone(UniSurvBackboneParams(**paper, longitudinal=True), _ctx(10, 96))
    assert _count(longi) == _expected_params(10, 96, 512, 4, 2048, period=6)
    normed = UniSurvBackbone(UniSurvBackboneParams(**TINY, final_norm=True), _ctx())
    assert _count(normed) == _expected_params(5, 12, 8, 1, 8, final_norm=True)


def test_the_originals_unused_final_norm_is_left_out_unless_final_norm():
    # The original builds Encoder.norm (a LayerNorm over d_model) and never applies it, so its
    # parameter count holds 2·d_model parameters that never train; ours leaves it out by default.
    paper = {"d_model": 512, "num_layers": 4, "num_heads": 8, "d_ff": 2048, "t_max": 96}
    plain = UniSurvBackbone(UniSurvBackboneParams(**paper), _ctx(10, 96))
    normed = UniSurvBackbone(UniSurvBackboneParams(**paper, final_norm=True), _ctx(10, 96))
    assert _count(normed) - _count(plain) == 2 * 512 == 1024
    assert not any(name.startswith("encoder.norm") for name, _ in plain.named_parameters())
    torch.manual_seed(0)
    tiny = UniSurvBackbone(UniSurvBackboneParams(**TINY, final_norm=True), _ctx()).eval()
    batch = tiny.example_batch(_ctx(), batch_size=2)
    before = tiny(batch)["logits"]
    with torch.no_grad():
        tiny.encoder.norm.bias.add_(1.0)  # applied when on: the output moves
    assert not torch.allclose(before, tiny(batch)["logits"])


def test_forward_shapes_static_and_longitudinal():
    model = UniSurvBackbone(UniSurvBackboneParams(**TINY, longitudinal=True), _ctx(5, 12))
    batch = model.example_batch(_ctx(5, 12), batch_size=3)
    assert batch["longitudinal"].shape == (3, 3, 12, 30)
    out = model(batch)
    assert out["logits"].shape == (3, 12)
    assert out["features"].shape == (3, model.feature_dim)


def test_chunk_features_repeat_within_a_chunk():
    model = UniSurvBackbone(UniSurvBackboneParams(**TINY, longitudinal=True), _ctx(5, 12))
    with torch.no_grad():
        model.cnn.conv.weight.fill_(0.1)
    feats = model.cnn(torch.rand(2, 3, 12, 30))
    assert feats.shape == (2, 12, 20)
    torch.testing.assert_close(feats[:, 0], feats[:, 5])
    assert not torch.equal(feats[:, 5], feats[:, 6])


def test_repeated_static_tokens_still_give_distinct_bin_logits():
    model = UniSurvBackbone(UniSurvBackboneParams(**{**TINY, "d_model": 32}), _ctx(5, 12)).eval()
    out = model({"image": torch.randn(2, 5)})
    assert out["logits"].std(-1).min() > 0


def test_original_layernorm_matches_its_formula():
    x = torch.randn(4, 7, dtype=torch.float64)
    norm = OriginalLayerNorm(7).double()
    with torch.no_grad():
        norm.weight.uniform_()
        norm.bias.uniform_()
    a = x.numpy()
    ref = (
        norm.weight.detach().numpy()
        * (a - a.mean(-1, keepdims=True))
        / (a.std(-1, ddof=1, keepdims=True) + 1e-6)
        + norm.bias.detach().numpy()
    )
    np.testing.assert_allclose(norm(x).detach().numpy(), ref, atol=1e-12)
    model = UniSurvBackbone(UniSurvBackboneParams(**TINY, layernorm="original"), _ctx())
    assert any(isinstance(m, OriginalLayerNorm) for m in model.modules())
    assert not any(isinstance(m, nn.LayerNorm) for m in model.modules())


def test_padding_mask_hides_masked_bins_from_attention():
    wide = {**TINY, "d_model": 32, "d_ff": 32}
    model = UniSurvBackbone(UniSurvBackboneParams(**wide, use_mask=True), _ctx()).eval()
    x = torch.randn(1, 5)
    mask = torch.ones(1, 12, dtype=torch.bool)
    mask[0, 8:] = False
    a = model({"image": x, "mask": mask})["logits"]
    unmasked = UniSurvBackbone(UniSurvBackboneParams(**wide), _ctx()).eval()
    unmasked.load_state_dict(model.state_dict())
    b = unmasked({"image": x})["logits"]
    assert not torch.allclose(a, b)


def test_gradcheck_loss_wrt_tiny_model_parameters():
    torch.manual_seed(0)
    params = UniSurvBackboneParams(d_model=4, num_layers=1, num_heads=2, d_ff=4, dropout=0.0)
    model = UniSurvBackbone(params, _ctx(3, 6)).double()
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_(True)
    batch = {
        "image": torch.randn(4, 3, dtype=torch.float64),
        "time": torch.tensor([1.0, 2.0, 4.0, 3.0]),
        "event": torch.tensor([1, 0, 1, 0]),
        "margin": torch.tensor([1, 3, 4, 4]),
        "weight": torch.tensor([1.0, 0.3, 1.0, 0.6], dtype=torch.float64),
    }
    loss = MMVLoss(MMVLossParams(alpha_d=0), BuildContext())

    def fn(vector):
        chunks = torch.split(vector, [s.numel() for s in shapes])
        state = {n: c.view(s) for n, c, s in zip(names, chunks, shapes, strict=True)}
        out = torch.func.functional_call(model, state, (batch,))
        return loss(out, batch).total

    assert torch.autograd.gradcheck(fn, (flat,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_config_errors_are_clear():
    with pytest.raises(ValidationError, match="must divide t_max"):
        UniSurvBackboneParams(longitudinal=True, t_max=96, time_period=7)
    with pytest.raises(ValidationError, match="must divide d_model"):
        UniSurvBackboneParams(d_model=10, num_heads=4)
    with pytest.raises(ComponentError, match="time_period"):
        UniSurvBackbone(UniSurvBackboneParams(longitudinal=True, time_period=5), _ctx(5, 12))
    with pytest.raises(ComponentError, match="t_max"):
        UniSurvBackbone(UniSurvBackboneParams(t_max=24), _ctx(5, 12))
    with pytest.raises(ComponentError, match="in_features"):
        UniSurvBackbone(UniSurvBackboneParams(), BuildContext(data=DataFacts(task="survival")))
    model = UniSurvBackbone(UniSurvBackboneParams(**TINY), _ctx())
    with pytest.raises(ComponentError, match=r"\(B, 5\)"):
        model({"image": torch.randn(2, 4)})


class _MLP(nn.Module):
    feature_dim = 6

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 6)

    def forward(self, batch):
        feats = self.net(batch["image"])
        return {"logits": feats[:, :2], "features": feats}


def test_pdf_head_turns_features_into_time_logits():
    head = PDFHeadAdapter(PDFHeadAdapterParams(**TINY, t_max=10), BuildContext())
    model = head.wrap(_MLP())
    out = model({"image": torch.randn(3, 4)})
    assert out["logits"].shape == (3, 10)
    assert out["features"].shape == (3, 6)
    out["logits"].sum().backward()
    assert model.model.net.weight.grad is not None
    with pytest.raises(ComponentError, match="feature_dim"):
        PDFHeadAdapter(PDFHeadAdapterParams(**TINY, t_max=10), BuildContext()).wrap(nn.Linear(2, 2))
