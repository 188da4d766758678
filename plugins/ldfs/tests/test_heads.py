"""Stage-2 heads: zero-shot init, WiSE, CLIP-Adapter, CoOp; check 6 (one tensor, three heads)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _stub import StubClip
from asklepios_ldfs.augmentations import FeatureSynthesis
from asklepios_ldfs.datasets import ToyClipSpace
from asklepios_ldfs.heads import ClipAdapterHead, CoOpHead, FeatureBackbone, LinearProbe
from asklepios_ldfs.params import (
    ClipAdapterHeadParams,
    CoOpHeadParams,
    FeatureBackboneParams,
    FeatureSynthesisParams,
    LDFSSynthesizerParams,
    LinearProbeParams,
    ToyClipSpaceParams,
)
from asklepios_ldfs.synthesizer import LDFSSynthesizer
from asklepios_sdk import BuildContext, ComponentError


@pytest.fixture(scope="module")
def toy():
    data = ToyClipSpace(ToyClipSpaceParams(samples_per_class=20, eval_per_class=5))
    ctx = BuildContext(data=data.facts(), seed=0)
    return data, ctx


def test_linear_probe_zero_shot_init_and_wise(toy):
    data, ctx = toy
    probe = LinearProbe(LinearProbeParams(wise_beta=0.3), ctx).wrap(
        FeatureBackbone(FeatureBackboneParams(), ctx)
    )
    features = data.split("train").features[:6]
    text = torch.tensor(data.text_features()["source"], dtype=torch.float32)
    out = probe({"image": features})
    torch.testing.assert_close(out["logits"], 100 * features @ text.T, rtol=1e-5, atol=1e-4)
    with torch.no_grad():
        probe.weight.add_(0.1)
        probe.bias.add_(0.2)
    probe.eval()
    expected = 100 * features @ (0.7 * text + 0.3 * (text + 0.1)).T + 0.3 * 0.2
    torch.testing.assert_close(probe({"image": features})["logits"], expected, rtol=1e-5, atol=1e-4)
    probe.train()
    expected = 100 * features @ (text + 0.1).T + 0.2
    torch.testing.assert_close(probe({"image": features})["logits"], expected, rtol=1e-5, atol=1e-4)


def test_clip_adapter_ratio_zero_is_zero_shot(toy):
    data, ctx = toy
    head = ClipAdapterHead(ClipAdapterHeadParams(ratio=0.0), ctx).wrap(
        FeatureBackbone(FeatureBackboneParams(), ctx)
    )
    features = data.split("train").features[:6]
    text = torch.tensor(data.text_features()["source"], dtype=torch.float32)
    torch.testing.assert_close(
        head({"image": features})["logits"], 100 * features @ text.T, rtol=1e-5, atol=1e-4
    )
    assert head.adapter[0].weight.shape == (16, 64)


def test_coop_prompts_and_errors(toy):
    _, ctx = toy
    stub = StubClip(64)
    head = CoOpHead(CoOpHeadParams(n_ctx=3, logit_scale=10.0), ctx).wrap(stub)
    assert head.context.shape == (3, StubClip.width)
    assert sum(p.numel() for p in head.parameters() if p.requires_grad) == 3 * StubClip.width
    text = head.class_text()
    assert text.shape == (5, 64)
    with torch.no_grad():
        head.context.zero_()
        placeholder = stub.token_embedding(stub.tokenize(["X"]))[0, 1]
        head.context.copy_(placeholder.expand(3, -1))
    prompts = [f"X X X {name}." for name in ctx.data.class_names]
    direct = stub.encode_token_embeddings(stub.token_embedding(stub.tokenize(prompts)), head.tokens)
    torch.testing.assert_close(head.class_text(), direct)
    init = CoOpHead(CoOpHeadParams(ctx_init="a photo of a"), ctx).wrap(stub)
    assert init.context.shape == (4, StubClip.width)
    with pytest.raises(ComponentError, match="text tower"):
        CoOpHead(CoOpHeadParams(), ctx).wrap(FeatureBackbone(FeatureBackboneParams(), ctx))


def test_check6_one_synthetic_tensor_feeds_three_heads(toy):
    data, ctx = toy
    torch.manual_seed(0)
    synthesizer = LDFSSynthesizer(LDFSSynthesizerParams(zero_init_last=False, num_draws=1), ctx)
    augment = FeatureSynthesis(FeatureSynthesisParams(synthesizer_file="unused"), ctx)
    augment.attach(synthesizer.net)
    train = data.split("train")
    batch = augment({"image": train.features, "label": train.labels})
    n = len(train)
    assert batch["image"].shape == (n * 2, 64) and int(batch["synthetic"].sum()) == n
    heads = {
        "linear_probe": LinearProbe(LinearProbeParams(init="random", logit_scale=10.0), ctx),
        "clip_adapter": ClipAdapterHead(ClipAdapterHeadParams(logit_scale=10.0), ctx),
        "coop": CoOpHead(CoOpHeadParams(n_ctx=4, logit_scale=10.0), ctx),
    }
    for name, head in heads.items():
        inner = StubClip(64) if name == "coop" else FeatureBackbone(FeatureBackboneParams(), ctx)
        model = head.wrap(inner)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=1e-2)
        losses = []
        for _ in range(20):
            loss = F.cross_entropy(model(batch)["logits"], batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0], name
