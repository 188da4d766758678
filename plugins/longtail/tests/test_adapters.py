"""Heads and evaluation-time adapters: spec fixtures (§3.7, §8.1) and properties (§8.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _fixtures import COUNTS, F1, FY, QUERIES, TNORM_W, make_ctx
from asklepios_longtail.adapters import (
    BBNHead,
    CausalNormHead,
    CosineHead,
    CRTHead,
    DisAlignHead,
    LWSHead,
    bbn_alpha,
)
from asklepios_longtail.params import (
    BBNHeadParams,
    CausalNormHeadParams,
    CosineHeadParams,
    CRTHeadParams,
    DisAlignHeadParams,
    LWSHeadParams,
    NCMClassifierParams,
    PosthocLAParams,
    TauNormParams,
)
from asklepios_longtail.posthoc import NCMClassifier, PosthocLA, TauNorm
from asklepios_sdk import Backbone, ComponentError
from torch import nn


class Linear4(Backbone):
    """A backbone whose features are the input itself and whose classifier is a linear layer."""

    feature_dim = 4

    def __init__(self, num_classes: int = 3, hidden: bool = False) -> None:
        super().__init__()
        self.body = nn.Linear(4, 4) if hidden else nn.Identity()
        self.classifier = nn.Linear(4, num_classes)

    def forward(self, batch):
        f = self.body(batch["image"])
        return {"logits": self.classifier(f), "features": f}


def feats(x) -> dict[str, torch.Tensor]:
    return {"image": torch.tensor(np.asarray(x), dtype=torch.float32)}


def test_tau_norm_fixture_and_tau_zero():
    model = Linear4()
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor(TNORM_W))
        model.classifier.bias.fill_(0.7)
    adapter = TauNorm(TauNormParams(), make_ctx([1, 1, 1])).wrap(model).eval()
    w = TNORM_W / np.linalg.norm(TNORM_W, axis=1, keepdims=True) ** 2
    out = adapter(feats(QUERIES))["logits"].detach().numpy()
    np.testing.assert_allclose(out, QUERIES @ w.T, rtol=1e-5)
    zero = TauNorm(TauNormParams(tau=0), make_ctx([1, 1, 1])).wrap(model).eval()
    np.testing.assert_allclose(
        zero(feats(QUERIES))["logits"].detach().numpy(), QUERIES @ TNORM_W.T, rtol=1e-5
    )
    adapter.train()  # training passes are untouched
    raw = model(feats(QUERIES))["logits"]
    assert torch.equal(adapter(feats(QUERIES))["logits"], raw)


def _np_cl2n(train, labels, queries):
    mu = train.mean(axis=0)

    def norm(f):
        g = f - mu
        return g / np.linalg.norm(g, axis=1, keepdims=True)

    t = norm(train)
    centroids = np.stack([t[labels == k].mean(axis=0) for k in range(3)])
    q = norm(queries)
    return -((q[:, None, :] - centroids[None]) ** 2).sum(-1), centroids, mu


def test_ncm_cl2n_fixture_and_centroids_classify_themselves():
    adapter = NCMClassifier(NCMClassifierParams(), make_ctx([2, 2, 2])).wrap(Linear4())
    for half in (slice(0, 3), slice(3, 6)):
        adapter.collect({**feats(F1[half]), "label": torch.tensor(FY[half])})
    adapter.eval()
    out = adapter(feats(QUERIES))["logits"].detach().numpy()
    expected, centroids, mu = _np_cl2n(F1, FY, QUERIES)
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    # a centroid (mapped back to feature space) is nearest to its own class
    back = centroids + mu
    scale = adapter(feats(back))["logits"].argmax(dim=1).numpy()
    assert scale.tolist() == [0, 1, 2]
    assert all(not p.requires_grad for p in adapter.parameters())


def test_ncm_monica_cos_is_the_dot_product_over_the_width_and_cosine_is_a_cosine():
    for dist in ("cos", "cosine"):
        adapter = NCMClassifier(NCMClassifierParams(dist=dist), make_ctx([2, 2, 2]))
        adapter = adapter.wrap(Linear4())
        adapter.collect({**feats(F1), "label": torch.tensor(FY)})
        out = adapter.eval()(feats(QUERIES))["logits"].detach().numpy()
        _, centroids, mu = _np_cl2n(F1, FY, QUERIES)
        q = QUERIES - mu
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        if dist == "cos":  # MONICA KNNClassifier.cos_similarity: (A @ B.T) / feat_dim
            expected = q @ centroids.T / q.shape[1]
        else:
            expected = q @ (centroids / np.linalg.norm(centroids, axis=1, keepdims=True)).T
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def test_ncm_without_collection_errors():
    adapter = NCMClassifier(NCMClassifierParams(), make_ctx([2, 2, 2])).wrap(Linear4()).eval()
    with pytest.raises(ComponentError, match=r"longtail\.collect"):
        adapter(feats(QUERIES))


def test_posthoc_la_eval_only_and_scale_invariant():
    model = Linear4(num_classes=4)
    x = feats(np.random.default_rng(0).normal(size=(20, 4)))
    a = PosthocLA(PosthocLAParams(), make_ctx(COUNTS)).wrap(model).eval()
    b = PosthocLA(PosthocLAParams(), make_ctx(COUNTS * 7)).wrap(model).eval()
    raw = model(x)["logits"]
    expected = raw - torch.log(torch.tensor(COUNTS / COUNTS.max(), dtype=torch.float32) + 1e-12)
    assert torch.allclose(a(x)["logits"], expected)
    assert torch.equal(a(x)["logits"].argmax(1), b(x)["logits"].argmax(1))
    assert torch.equal(a.train()(x)["logits"], raw)


def test_causal_norm_train_output_and_alpha_zero_eval():
    torch.manual_seed(0)
    head = CausalNormHead(CausalNormHeadParams(), make_ctx([5, 3, 1])).wrap(Linear4())
    x = torch.randn(6, 4)
    out = head({"image": x})["logits"].detach().numpy()
    w = head.weight.detach().numpy()
    xn = x.numpy()
    expected = np.zeros((6, 3))
    for k in range(2):
        xk = xn[:, 2 * k : 2 * k + 2]
        wk = w[:, 2 * k : 2 * k + 2]
        xk = xk / np.linalg.norm(xk, axis=1, keepdims=True)
        wk = wk / (np.linalg.norm(wk, axis=1, keepdims=True) + 1 / 32)
        expected += 8 * xk @ wk.T
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(head.embed_mean.numpy(), xn.mean(0), rtol=1e-6)
    no_effect = CausalNormHead(CausalNormHeadParams(alpha=0), make_ctx([5, 3, 1])).wrap(Linear4())
    with torch.no_grad():
        no_effect.weight.copy_(head.weight)
    no_effect({"image": x})
    train_out = no_effect({"image": x})["logits"]
    no_effect.eval()
    assert torch.allclose(no_effect({"image": x})["logits"], train_out, atol=1e-6)
    head.eval()
    assert not torch.allclose(head({"image": x})["logits"], head.train()({"image": x})["logits"])


def test_disalign_at_initialisation_and_freezing():
    torch.manual_seed(0)
    model = Linear4(hidden=True)
    head = DisAlignHead(DisAlignHeadParams(), make_ctx([5, 3, 1])).wrap(model)
    x = torch.randn(5, 4)
    f = model.body(x)
    sigma = torch.sigmoid(head.confidence(f))
    expected = (1 + sigma) * head.linear(f)
    assert torch.allclose(head({"image": x})["logits"], expected, atol=1e-6)
    assert not any(p.requires_grad for p in model.parameters())
    original = DisAlignHead(DisAlignHeadParams(mode="original"), make_ctx([5, 3, 1])).wrap(
        Linear4(hidden=True)
    )
    trainable = {n for n, p in original.named_parameters() if p.requires_grad}
    assert trainable == {
        "confidence.weight",
        "confidence.bias",
        "logit_scale",
        "logit_bias",
    }


def test_lws_scales_one_equals_linear_and_only_scales_train():
    torch.manual_seed(0)
    model = Linear4(hidden=True)
    head = LWSHead(LWSHeadParams(), make_ctx([5, 3, 1])).wrap(model)
    x = torch.randn(5, 4)
    assert torch.allclose(head({"image": x})["logits"], model({"image": x})["logits"])
    before = {n: p.detach().clone() for n, p in head.named_parameters()}
    params = [p for p in head.parameters() if p.requires_grad]
    assert len(params) == 1 and params[0] is head.scales
    opt = torch.optim.SGD(params, lr=0.5)
    loss = nn.functional.cross_entropy(head({"image": x})["logits"], torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    opt.step()
    changed = {n for n, p in head.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"scales"}
    # the stage-1 classifier is shared, not copied: loading it later updates the head
    with torch.no_grad():
        model.classifier.weight.mul_(2)
    assert torch.equal(head.stage1_classifier().weight, model.classifier.weight)


def test_lws_mislas_and_dropped_bias():
    mislas = LWSHead(LWSHeadParams(trainable="all"), make_ctx([5, 3, 1])).wrap(Linear4(hidden=True))
    trainable = {n for n, p in mislas.named_parameters() if p.requires_grad}
    assert trainable == {"scales", "model.classifier.weight", "model.classifier.bias"}
    dropped = LWSHead(LWSHeadParams(drop_stage1_bias=True), make_ctx([5, 3, 1])).wrap(Linear4())
    x = torch.randn(3, 4)
    w = dropped.stage1_classifier().weight
    expected = x @ w.T + dropped.fresh_bias
    assert torch.allclose(dropped({"image": x})["logits"], expected)


def test_crt_freezes_body_and_trains_fresh_head():
    model = Linear4(hidden=True)
    head = CRTHead(CRTHeadParams(), make_ctx([5, 3, 1])).wrap(model)
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    everything = CRTHead(CRTHeadParams(finetune_all=True), make_ctx([5, 3, 1])).wrap(
        Linear4(hidden=True)
    )
    assert all(p.requires_grad for p in everything.parameters())
    cosine = CRTHead(CRTHeadParams(head="cosine"), make_ctx([5, 3, 1])).wrap(Linear4())
    assert cosine({"image": torch.randn(2, 4)})["logits"].abs().max() <= 1 + 1e-6


def test_cosine_head_outputs_cosines():
    head = CosineHead(CosineHeadParams(), make_ctx([5, 3, 1])).wrap(Linear4())
    x = torch.randn(7, 4)
    w = head.head.weight.detach()
    expected = (x / x.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=0, keepdim=True))
    assert torch.allclose(head({"image": x})["logits"], expected, atol=1e-6)


def test_bbn_alpha_schedules_and_eval_input():
    monica = [bbn_alpha(e, 50, "monica") for e in (0, 1, 25, 49)]
    np.testing.assert_allclose(monica, [0.9999, 1, 0.9424, 0.7696], atol=1e-4)
    assert bbn_alpha(99, 100, "monica") == pytest.approx(-2.8416, abs=1e-4)
    assert bbn_alpha(0, 50) == 1 and bbn_alpha(25, 50) == pytest.approx(0.75)
    head = BBNHead(BBNHeadParams(), make_ctx([5, 3, 1])).wrap(Linear4())
    x = torch.randn(3, 4)
    expected = head.head(torch.cat([x, x], dim=1))
    assert torch.allclose(head.eval()({"image": x})["logits"], expected)
    xb = torch.randn(3, 4)
    mixed = head.train()({"image": x, "bbn_b": {"image": xb}, "bbn_alpha": 0.3})["logits"]
    assert torch.allclose(mixed, head.head(torch.cat([0.6 * x, 1.4 * xb], dim=1)))
