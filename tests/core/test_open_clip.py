"""Tests of the built-in backbone ``core.open_clip`` on tiny random-init open_clip models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios.builtins.open_clip import OpenCLIPBackbone, resolve_cached_weights
from asklepios.builtins.params import OpenCLIPBackboneParams
from asklepios_sdk import BuildContext, DataFacts, WeightsError
from pydantic import ValidationError

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
OTHER = {**TINY, "embed_dim": 8}
CTX = BuildContext(data=DataFacts(num_classes=3, class_names=("cat", "dog", "bird")))


def _build(**overrides):
    torch.manual_seed(0)
    params = {"model": "tiny", "model_cfg": TINY, "random_init": True, **overrides}
    return OpenCLIPBackbone(OpenCLIPBackboneParams(**params), CTX)


@pytest.fixture(scope="module")
def tiny():
    return _build()


def test_forward_gives_unit_norm_features_and_zero_shot_logits(tiny):
    batch = tiny.example_batch(CTX, 4)
    out = tiny(batch)
    assert out["features"].shape == (4, 16)
    torch.testing.assert_close(out["features"].norm(dim=-1), torch.ones(4))
    text = tiny.class_text_features()
    expected = tiny.logit_scale * out["features"] @ text.T
    torch.testing.assert_close(out["logits"], expected)
    assert tiny.feature_dim == 16


def test_frozen_by_default_and_stays_in_eval_mode(tiny):
    assert not any(p.requires_grad for p in tiny.parameters())
    tiny.train()
    assert not tiny.clip.training
    unfrozen = _build(frozen=False)
    unfrozen.train()
    assert unfrozen.clip.training
    assert all(p.requires_grad for p in unfrozen.parameters())


def test_encode_prompts_averages_templates_then_renormalises(tiny):
    templates = ["a photo of a {}.", "a sketch of a {}."]
    got = tiny.encode_prompts(templates, ["cat", "dog"]).numpy()
    single = tiny.encode_text([t.format(c) for c in ["cat", "dog"] for t in templates]).numpy()
    mean = single.reshape(2, 2, -1).mean(axis=1)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_token_embedding_path_matches_encode_text(tiny):
    texts = ["a photo of a cat.", "a dog"]
    tokens = tiny.tokenize(texts)
    via_embeddings = tiny.encode_token_embeddings(tiny.token_embedding(tokens), tokens)
    torch.testing.assert_close(via_embeddings, tiny.encode_text(texts))


def test_grey_images_get_a_clear_error(tiny):
    with pytest.raises(Exception, match="RGB images"):
        tiny({"image": torch.rand(2, 1, 32, 32)})


def test_features_input_mode_renormalises_cached_features():
    model = _build(inputs="features")
    feats = torch.randn(5, 16) * 3
    out = model({"image": feats})
    torch.testing.assert_close(out["features"], torch.nn.functional.normalize(feats, dim=-1))
    with pytest.raises(Exception, match="inputs='features'"):
        model({"image": torch.randn(5, 7)})


def test_local_file_weights_load_exactly(tmp_path, tiny):
    from safetensors.torch import save_file

    reference = _build()
    for p in reference.clip.parameters():
        p.data.normal_(0, 0.02, generator=torch.Generator().manual_seed(7))
    state = {k: v.contiguous() for k, v in reference.clip.state_dict().items()}
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pt"):
        if path.suffix == ".pt":
            torch.save(state, path)
        else:
            save_file(state, path)
        loaded = OpenCLIPBackbone(
            OpenCLIPBackboneParams(model="tiny", model_cfg=TINY, pretrained_file=str(path)), CTX
        )
        batch = reference.example_batch(CTX, 2)
        torch.testing.assert_close(loaded(batch)["features"], reference(batch)["features"])


def test_weight_errors_are_clear(tmp_path):
    with pytest.raises(WeightsError, match="random_init"):
        OpenCLIPBackbone(OpenCLIPBackboneParams(model="tiny", model_cfg=TINY), CTX)
    with pytest.raises(WeightsError, match="does not exist"):
        OpenCLIPBackbone(
            OpenCLIPBackboneParams(
                model="tiny", model_cfg=TINY, pretrained_file=str(tmp_path / "x.pt")
            ),
            CTX,
        )
    other = OpenCLIPBackbone(
        OpenCLIPBackboneParams(model="other", model_cfg=OTHER, random_init=True), CTX
    )
    path = tmp_path / "other.pt"
    torch.save(other.clip.state_dict(), path)
    with pytest.raises(WeightsError, match="matches the checkpoint"):
        params = OpenCLIPBackboneParams(model="tiny", model_cfg=TINY, pretrained_file=str(path))
        OpenCLIPBackbone(params, CTX)


def test_cached_tag_never_downloads(tmp_path):
    with pytest.raises(WeightsError, match="not in the local cache") as info:
        resolve_cached_weights("RN50", "openai", cache_dir=str(tmp_path))
    assert str(tmp_path) in str(info.value)
    with pytest.raises(WeightsError, match="no pretrained tag"):
        resolve_cached_weights("RN50", "no-such-tag", cache_dir=str(tmp_path))
    fake = tmp_path / "RN50.pt"
    fake.write_bytes(b"x")
    # a file already in the cache is found without any network access
    import open_clip

    url = open_clip.get_pretrained_cfg("RN50", "openai").get("url", "")
    if url:
        cached = tmp_path / url.rsplit("/", 1)[-1]
        cached.write_bytes(b"x")
        assert resolve_cached_weights("RN50", "openai", cache_dir=str(tmp_path)) == cached


def test_params_validation():
    with pytest.raises(ValidationError, match="not both"):
        OpenCLIPBackboneParams(pretrained_file="a.pt", pretrained="openai")
    with pytest.raises(ValidationError, match="class_prompts"):
        OpenCLIPBackboneParams(class_prompts=["no placeholder"])
    with pytest.raises(Exception, match="unknown architecture"):
        OpenCLIPBackbone(OpenCLIPBackboneParams(model="NoSuchNet", random_init=True), CTX)
    with pytest.raises(Exception, match="lacks"):
        params = OpenCLIPBackboneParams(model="x", model_cfg={"embed_dim": 4}, random_init=True)
        OpenCLIPBackbone(params, CTX)
