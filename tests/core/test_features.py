"""Tests of the feature cache (``asklepios.features``) and the ``core.clip_features`` wrapper."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from asklepios import features as feat
from asklepios.builtins.params import ClipFeaturesParams
from asklepios_sdk import DataFacts, Dataset

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class ListSplit(torch.utils.data.Dataset):
    def __init__(self, images, labels, domains):
        self.images, self.labels, self.domains = images, labels, domains

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": int(self.labels[i]), "domain": self.domains[i]}


class TinyImages(Dataset):
    def __init__(self, n=6, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.data = {
            name: ListSplit(
                torch.rand(n, 3, 32, 32, generator=gen),
                np.arange(n) % 3,
                torch.arange(n) % 2,
            )
            for name in ("train", "val", "test")
        }

    def split(self, name):
        return self.data[name]

    def labels(self, name):
        return self.data[name].labels

    def facts(self):
        return DataFacts(num_samples=6, num_classes=3, class_names=("cat", "dog", "bird"))


def test_key_is_deterministic_and_sensitive_to_every_part():
    parts = {"backbone": {"id": "a"}, "weights": "w", "transform": "t", "dataset": {"split": "x"}}
    key = feat.feature_cache_key(**parts)
    assert key == feat.feature_cache_key(**dict(reversed(list(parts.items()))))
    for name, other in [("backbone", {"id": "b"}), ("weights", None), ("transform", "u")]:
        assert feat.feature_cache_key(**{**parts, name: other}) != key
    assert feat.feature_cache_key(**{**parts, "dataset": {"split": "y"}}) != key


def test_file_digest_is_sha256(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc" * 1000)
    assert feat.file_digest(path) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_cache_round_trip_atomic_and_corruption_tolerant(tmp_path):
    cache = feat.FeatureCache(tmp_path / "c")
    assert cache.load("k") is None
    tensors = {"features": torch.randn(4, 3), "label": torch.arange(4)}
    cache.save("k", tensors, {"split": "train"})
    loaded, meta = cache.load("k")
    torch.testing.assert_close(loaded["features"], tensors["features"])
    assert meta == {"split": "train"}
    assert [p.name for p in (tmp_path / "c").iterdir()] == ["k.safetensors"]
    cache.path("k").write_bytes(b"truncated")
    assert cache.load("k") is None
    calls = []

    def compute():
        calls.append(1)
        return tensors

    feat.cached_features(cache, "k", compute)
    feat.cached_features(cache, "k", compute)
    assert len(calls) == 1


def test_cache_write_interrupted_leaves_no_entry(tmp_path, monkeypatch):
    import safetensors.torch

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    cache = feat.FeatureCache(tmp_path / "c")
    cache.save("old", {"features": torch.zeros(2, 3)}, {})
    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.save("k", {"features": torch.ones(2, 3)}, {})
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["old.safetensors"]
    assert cache.load("k") is None


def test_extract_features_keeps_numeric_fields():
    split = TinyImages().split("train")
    weight = torch.randn(3 * 32 * 32, 5)
    out = feat.extract_features(lambda x: x.flatten(1) @ weight, split, batch_size=4)
    expected = torch.stack([split[i]["image"] for i in range(6)]).flatten(1) @ weight
    torch.testing.assert_close(out["features"], expected, rtol=1e-4, atol=1e-4)
    assert out["label"].tolist() == [0, 1, 2, 0, 1, 2]
    assert out["domain"].tolist() == [0, 1, 0, 1, 0, 1]


def test_clip_features_wrapper_caches_splits_and_text(tmp_path, monkeypatch):
    params = ClipFeaturesParams(
        clip={"model": "tiny", "model_cfg": TINY, "random_init": True},
        cache_dir=str(tmp_path),
        prompt_sets={"source": ["a photo of a {}."], "sketch": ["a sketch of a {}.", "{} doodle"]},
    )
    inner = TinyImages()
    wrapper = feat.ClipFeatures(params).wrap(inner)
    facts = wrapper.facts()
    assert facts.num_features == 16 and facts.image_size is None
    text = facts.extras["text_features"]
    assert np.asarray(text["sketch"]).shape == (3, 16)
    train = wrapper.split("train")
    sample = train[1]
    assert sample["image"].shape == (16,) and int(sample["label"]) == 1
    encoder = wrapper._encoder
    with torch.no_grad():
        direct = encoder.encode_image(torch.stack([inner.split("train")[i]["image"] for i in [1]]))
    torch.testing.assert_close(sample["image"], direct[0], rtol=1e-5, atol=1e-5)

    def no_encoder(*args, **kwargs):
        raise AssertionError("the cache should have been hit")

    monkeypatch.setattr(feat, "OpenCLIPBackbone", no_encoder)
    again = feat.ClipFeatures(params).wrap(inner)
    torch.testing.assert_close(again.split("train")[1]["image"], sample["image"])
    assert np.allclose(np.asarray(again.facts().extras["text_features"]["source"]), text["source"])
    other = feat.ClipFeatures(params).wrap(TinyImages(seed=1))
    with pytest.raises(AssertionError, match="cache should have been hit"):
        other.split("train")
