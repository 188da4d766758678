"""Synthesiser, losses, augmentations and evaluator as components (shapes, wiring, formulas)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from asklepios_ldfs import _functional as fn
from asklepios_ldfs.augmentations import FeatureSynthesis, TextNoise, synthesizer_path
from asklepios_ldfs.datasets import ToyClipSpace
from asklepios_ldfs.heads import FeatureBackbone
from asklepios_ldfs.losses import PairwiseRegularizer, SynthesisObjective, TextGuidedLoss
from asklepios_ldfs.metrics import DomainAccuracy
from asklepios_ldfs.params import (
    DomainAccuracyParams,
    FeatureBackboneParams,
    FeatureSynthesisParams,
    LDFSSynthesizerParams,
    PairwiseRegularizerParams,
    SynthesisObjectiveParams,
    TextGuidedLossParams,
    TextNoiseParams,
    ToyClipSpaceParams,
)
from asklepios_ldfs.synthesizer import LDFSSynthesizer, load_synthesizer, save_synthesizer
from asklepios_sdk import BuildContext, ComponentError, WeightsError


@pytest.fixture(scope="module")
def toy():
    data = ToyClipSpace(ToyClipSpaceParams(samples_per_class=20, eval_per_class=10, num_classes=4))
    return data, BuildContext(data=data.facts(), seed=0)


def synthesizer(ctx, **params):
    torch.manual_seed(0)
    return LDFSSynthesizer(LDFSSynthesizerParams(**params), ctx).wrap(
        FeatureBackbone(FeatureBackboneParams(), ctx)
    )


def batch_of(data, n=8):
    split = data.split("train")
    idx = torch.arange(0, len(split), len(split) // n)[:n]
    return {"image": split.features[idx], "label": split.labels[idx]}


def test_zero_init_ldfs_is_the_identity(toy):
    data, ctx = toy
    model = synthesizer(ctx, num_draws=3)
    batch = batch_of(data)
    out = model(batch)
    assert out["synthetic"].shape == (8, 1, 3, 64)
    real = F.normalize(batch["image"], dim=-1)
    torch.testing.assert_close(out["synthetic"], real[:, None, None].expand_as(out["synthetic"]))


def test_ldfs_is_stochastic_and_instance_conditional_lads_deterministic(toy):
    data, ctx = toy
    model = synthesizer(ctx, zero_init_last=False, per_domain_net=True)
    batch = batch_of(data)
    a, b = model(batch)["synthetic"], model(batch)["synthetic"]
    assert (F.cosine_similarity(a, b, dim=-1) < 0.9999).all()
    shift = a[:, 0, 0] - F.normalize(batch["image"], dim=-1)
    assert not torch.allclose(shift[0], shift[1], atol=1e-3)
    lads = synthesizer(ctx, arch="lads")
    torch.testing.assert_close(lads(batch)["synthetic"], lads(batch)["synthetic"])
    assert lads.net.w1.shape[0] == 1  # one MLP per target domain (K = 1 here)


def test_ldfs_formula_matches_numpy(toy):
    data, ctx = toy
    model = synthesizer(ctx, zero_init_last=False)
    batch = batch_of(data, 4)
    net = model.net
    torch.manual_seed(5)
    syn, z = net(batch["image"], batch["label"])
    f = F.normalize(batch["image"], dim=-1).numpy().astype(np.float64)
    ts = net.text_source.numpy()[0]
    tk = net.text_target.numpy()[0]
    y = batch["label"].numpy()
    x = np.concatenate([f, tk[y] - ts[y], z[:, 0, 0].numpy()], axis=1)
    hidden = np.maximum(x @ net.w1[0].detach().numpy() + net.b1[0].detach().numpy(), 0)
    out = f + hidden @ net.w2[0].detach().numpy() + net.b2[0].detach().numpy()
    expected = out / np.linalg.norm(out, axis=1, keepdims=True)
    np.testing.assert_allclose(syn[:, 0, 0].detach().numpy(), expected, atol=1e-5)


def test_synthesizer_hands_noised_tables_to_the_losses(toy):
    data, ctx = toy
    model = synthesizer(ctx)
    noise = TextNoise(TextNoiseParams(sigma=0.3), ctx)
    batch = noise(batch_of(data))
    out = model(batch)
    torch.testing.assert_close(out["text_target"][0], batch["text_features"]["sketch"])
    assert not torch.allclose(out["text_target"], model.net.text_target)
    clean = model(batch_of(data))
    torch.testing.assert_close(clean["text_source"], model.net.text_source)


def test_text_noise_is_seeded_and_fresh_each_call(toy):
    _, ctx = toy
    noise = TextNoise(TextNoiseParams(), ctx)
    torch.manual_seed(0)
    first, second = noise({})["text_features"], noise({})["text_features"]
    assert not torch.equal(first["source"], second["source"])
    torch.manual_seed(0)
    torch.testing.assert_close(noise({})["text_features"]["source"], first["source"])
    torch.manual_seed(1)
    assert not torch.equal(noise({})["text_features"]["source"], first["source"])


def test_text_guided_loss_matches_numpy(toy):
    data, ctx = toy
    model = synthesizer(ctx, zero_init_last=False)
    batch = batch_of(data)
    out = model(batch)
    loss = TextGuidedLoss(TextGuidedLossParams(), ctx)(out, batch)
    f = out["features"].detach().numpy().astype(np.float64)
    syn = out["synthetic"][:, 0, 0].detach().numpy().astype(np.float64)
    y = batch["label"].numpy()
    ts, tk = out["text_source"][0].numpy(), out["text_target"][0].numpy()
    dt = tk[y] - ts[y]
    disp = syn - f
    cos = (disp * dt).sum(1) / (np.linalg.norm(disp, axis=1) * np.linalg.norm(dt, axis=1))
    l_dir = np.mean(1 - cos)
    logits = (syn / np.linalg.norm(syn, axis=1, keepdims=True)) @ tk.T / 0.01
    logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
    logp -= logits.max(1, keepdims=True)
    l_cc = -np.mean(logp[np.arange(len(y)), y])
    values = loss.detached_terms()
    assert values["directional"] == pytest.approx(l_dir, rel=1e-4)
    assert values["class_consistency"] == pytest.approx(l_cc, rel=1e-4)
    assert values["loss"] == pytest.approx(0.5 * l_dir + 0.5 * l_cc, rel=1e-4)
    loss.total.backward()
    assert model.net.w2.grad is not None and torch.isfinite(model.net.w2.grad).all()


def test_text_guided_variants(toy):
    data, ctx = toy
    model = synthesizer(ctx, zero_init_last=False)
    batch = batch_of(data)
    out = model(batch)
    lads = TextGuidedLoss(
        TextGuidedLossParams(cc_temperature=None, cc_classes="source", class_weighted=True), ctx
    )(out, batch)
    weights = 1.0 / torch.tensor(ctx.data.class_counts, dtype=torch.float32)
    expected = fn.class_consistency_loss(
        out["synthetic"][:, :, 0], out["text_source"][:1], batch["label"], None, weights
    )
    torch.testing.assert_close(lads.terms["class_consistency"], expected)
    inst = TextGuidedLoss(TextGuidedLossParams(anchor="instance", alpha=1.0), ctx)(out, batch)
    direction = (out["text_target"][0] - out["text_source"][0])[batch["label"]]
    expected = fn.instance_anchor_loss(out["features"], out["synthetic"][:, 0, 0], direction)
    torch.testing.assert_close(inst.total, expected)
    with pytest.raises(ComponentError, match=r"ldfs\.synthesizer"):
        TextGuidedLoss(TextGuidedLossParams(), ctx)({"logits": torch.zeros(2, 2)}, batch)


def test_pairwise_regularizer_modes_and_objective(toy):
    data, ctx = toy
    model = synthesizer(ctx, zero_init_last=False, diversity_pair=True)
    batch = batch_of(data)
    out = model(batch)
    syn = out["synthetic"][:, :, 0]
    pair_params = PairwiseRegularizerParams(weight=2.0, diversity_weight=0.1)
    pair = PairwiseRegularizer(pair_params, ctx)(out, batch)
    expected = fn.pairwise_similarity_loss(out["features"], syn)
    torch.testing.assert_close(pair.terms["pairwise"], expected)
    div = fn.diversity_loss(out["synthetic"], out["synthetic_b"], out["noise"], out["noise_b"])
    torch.testing.assert_close(pair.total, 2.0 * expected + 0.1 * div)
    nn_self = PairwiseRegularizer(PairwiseRegularizerParams(pair_mode="nn_self"))(out, batch)
    torch.testing.assert_close(nn_self.total, fn.nn_self_loss(out["features"], syn))
    total = SynthesisObjective(SynthesisObjectiveParams(), ctx)(out, batch)
    assert set(total.terms) == {"directional", "class_consistency", "pairwise"}
    plain = synthesizer(ctx)(batch)
    with pytest.raises(ComponentError, match="diversity_pair"):
        PairwiseRegularizer(PairwiseRegularizerParams(diversity_weight=0.1))(plain, batch)


def test_feature_synthesis_ratio_fresh_noise_and_file(toy, tmp_path):
    data, ctx = toy
    model = synthesizer(ctx, zero_init_last=False)
    path = save_synthesizer(model.net, synthesizer_path(tmp_path, "synthesis"))
    params = FeatureSynthesisParams(from_stage="synthesis", num_draws=2)
    aug = FeatureSynthesis(params, ctx.replace(output_dir=str(tmp_path)))
    batch = {**batch_of(data, 4), "domain": torch.zeros(4, dtype=torch.long)}
    first, second = aug(batch), aug(batch)
    assert first["image"].shape == (4 * (1 + 2), 64)
    torch.testing.assert_close(first["image"][:4], batch["image"])
    assert (
        first["label"].tolist()
        == batch["label"].tolist() + batch["label"].repeat_interleave(2).tolist()
    )
    assert first["synthetic"].sum() == 8 and first["synthetic_domain"][:4].eq(-1).all()
    assert not torch.allclose(first["image"][4:], second["image"][4:])
    loaded = load_synthesizer(path)
    torch.testing.assert_close(loaded.w1, model.net.w1)
    only = FeatureSynthesis(
        FeatureSynthesisParams(synthesizer_file=str(path), include_real=False), ctx
    )(batch)
    assert only["image"].shape == (4, 64) and only["synthetic"].all()
    missing = FeatureSynthesis(FeatureSynthesisParams(synthesizer_file=str(tmp_path / "x")), ctx)
    with pytest.raises(WeightsError, match="run stage 1"):
        missing(batch)


def test_domain_accuracy_matches_numpy(toy):
    _, ctx = toy
    metric = DomainAccuracy(DomainAccuracyParams(), ctx)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 4))
    labels = rng.integers(0, 4, 30)
    domains = rng.integers(0, 2, 30)
    for part in (slice(0, 13), slice(13, 30)):
        metric.update(
            {"logits": torch.tensor(logits[part])},
            {"label": torch.tensor(labels[part]), "domain": torch.tensor(domains[part])},
        )
    got = metric.compute()
    hit = logits.argmax(1) == labels
    source, sketch = hit[domains == 0].mean(), hit[domains == 1].mean()
    assert float(got["source"]) == pytest.approx(source)
    assert float(got["sketch"]) == pytest.approx(sketch)
    assert float(got["mean"]) == pytest.approx((source + sketch) / 2)
    assert float(got["unseen_mean"]) == pytest.approx(sketch)
    metric.reset()
    metric.update({"logits": torch.tensor(logits)}, {"label": torch.tensor(labels)})
    assert set(metric.compute()) == {"source", "mean"}


def _lads_transcription(model, batch, ctx, class_text: np.ndarray) -> tuple[float, float]:
    """LADS ``augmentations.py::training_loop`` for one net: (directional, class consistency)."""
    net = model.net
    inp = F.normalize(batch["image"], dim=-1).double().numpy()
    labels = batch["label"].numpy()
    w1, b1 = net.w1[0].detach().double().numpy(), net.b1[0].detach().double().numpy()
    w2, b2 = net.w2[0].detach().double().numpy(), net.b2[0].detach().double().numpy()
    cls_outputs = np.maximum(inp @ w1 + b1, 0) @ w2 + b2  # MLP(f), no re-normalisation
    source, target = net.text_source.double().numpy(), net.text_target.double().numpy()
    text_diffs = np.stack([target[0, c] - source[0, c] for c in labels])
    text_diffs /= np.linalg.norm(text_diffs, axis=-1, keepdims=True)
    im_diffs = cls_outputs - inp
    im_diffs /= np.linalg.norm(im_diffs, axis=-1, keepdims=True)
    directional = np.mean(1 - (im_diffs * text_diffs).sum(-1))  # DirectionLoss('cosine')
    outputs_norm = cls_outputs / np.linalg.norm(cls_outputs, axis=-1, keepdims=True)
    logits = outputs_norm @ class_text.T  # get_class_logits: no temperature
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    weights = 1.0 / np.asarray(ctx.data.class_counts, dtype=np.float64)
    picked = weights[labels]
    consistency = -(picked * logp[np.arange(len(labels)), labels]).sum() / picked.sum()
    return float(directional), float(consistency)


def test_lads_loss_matches_the_lads_code(toy):
    data, ctx = toy
    model = synthesizer(ctx, arch="lads")
    batch = batch_of(data)
    out = model(batch)
    torch.testing.assert_close(out["synthetic"], F.normalize(out["synthetic_raw"], dim=-1))
    params = TextGuidedLossParams(cc_temperature=None, cc_classes="class_text", class_weighted=True)
    loss = TextGuidedLoss(params, ctx)(out, batch)
    classes = F.normalize(torch.as_tensor(data.text_features()["classes"]), dim=-1)
    directional, consistency = _lads_transcription(model, batch, ctx, classes.double().numpy())
    assert float(loss.terms["directional"]) == pytest.approx(directional, rel=1e-5)
    assert float(loss.terms["class_consistency"]) == pytest.approx(consistency, rel=1e-5)
    # the normalised output gives another directional value: the raw one is what LADS uses
    normalised = {k: v for k, v in out.items() if k != "synthetic_raw"}
    other = TextGuidedLoss(params, ctx)(normalised, batch)
    assert abs(float(other.terms["directional"]) - directional) > 1e-4


def test_class_text_set_is_fixed_and_required(toy):
    data, ctx = toy
    assert model_domains(ctx) == ("sketch",)  # 'classes' is never a target domain
    loss = TextGuidedLoss(TextGuidedLossParams(cc_classes="class_text"), ctx)
    expected = F.normalize(torch.as_tensor(data.text_features()["classes"]).float(), dim=-1)
    torch.testing.assert_close(loss.class_text, expected)
    with pytest.raises(ComponentError, match=r"prompt_sets.*a photo of a"):
        TextGuidedLoss(TextGuidedLossParams(cc_classes="class_text", class_text_set="plain"), ctx)


def model_domains(ctx) -> tuple[str, ...]:
    return synthesizer(ctx).domain_names
