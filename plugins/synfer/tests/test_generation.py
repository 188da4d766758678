"""Guided generation on the tiny model: items, determinism, guidance cost, the classifier's pull."""

from __future__ import annotations

import pytest
import torch
from _tiny import classifier_ref, save_classifier
from asklepios_sdk import BuildContext
from asklepios_sdk.synthesis import check_item
from asklepios_sdk.testing import host_components
from asklepios_synfer.au_adapter import AUAdapter
from asklepios_synfer.generation import GuidedGeneration
from asklepios_synfer.ldm import LatentDiffusion
from asklepios_synfer.params import AUAdapterParams, GuidedGenerationParams, LatentDiffusionParams

STEPS = {"steps": 10, "invert_steps": 6, "guidance_start": 3, "cfg": 3.0}


def _model(**params) -> GuidedGeneration:
    torch.manual_seed(0)  # the AU projector's initialisation (a run seeds each stage)
    ctx = BuildContext(components=host_components)
    ldm = LatentDiffusion(LatentDiffusionParams(), ctx)
    au = AUAdapter(AUAdapterParams(), ctx).wrap(ldm)
    generation = GuidedGeneration(GuidedGenerationParams(**{**STEPS, **params}), ctx)
    return generation.wrap(au).eval()


def _requests(n: int = 3) -> dict:
    gen = torch.Generator().manual_seed(4)
    return {
        "image": torch.rand(n, 3, 16, 16, generator=gen),
        "text": [f"a photo of a face with a {w} expression" for w in ("happy", "sad", "fear")][:n],
        "label": torch.tensor([1, 2, 4])[:n],
        "meta": {"au": (torch.rand(n, 41, generator=gen) > 0.7).float()},
    }


def test_items_follow_the_contract_and_the_same_seed_gives_the_same_images() -> None:
    model = _model()
    items = model.generate_items(_requests(), [5, 6, 7])
    assert len(items) == 3
    for i, item in enumerate(items):
        check_item(item, f"item {i}")
        assert item["image"].shape == (3, 16, 16) and item["label"] == [1, 2, 4][i]
        assert len(item["au"]) == 41 and item["caption"].startswith("a photo")
    again = _model().generate_items(_requests(), [5, 6, 7])
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(items, again, strict=True))


def test_from_noise_each_item_follows_its_own_seed() -> None:
    model = _model(layout=False)
    first = model.generate_items(_requests(2), [1, 2])
    swapped = model.generate_items(_requests(2), [1, 3])
    assert torch.equal(first[0]["image"], swapped[0]["image"])
    assert not torch.equal(first[1]["image"], swapped[1]["image"])


def test_guidance_costs_one_unet_backward_one_decode_and_one_classifier_pass_per_step(
    tmp_path,
) -> None:
    weights = save_classifier(tmp_path / "guide.pt", num_classes=8)
    plain = _model()
    guided = _model(classifier=classifier_ref(weights, 8))
    plain.generate_items(_requests(), [0, 1, 2])
    guided.generate_items(_requests(), [0, 1, 2])
    invert, guided_steps = STEPS["invert_steps"], STEPS["invert_steps"] - STEPS["guidance_start"]
    per_image = {k: v / 3 for k, v in plain.counts.items()}
    assert per_image == {"unet": invert + 2 * invert, "vae_decode": 1, "images": 1}
    extra = {k: (guided.counts[k] - plain.counts.get(k, 0)) / 3 for k in guided.counts}
    assert extra == {
        "unet": guided_steps,
        "unet_backward": guided_steps,
        "vae_decode": guided_steps,
        "classifier_backward": guided_steps,
        "images": 0,
    }
    meta = guided.generation_metadata()["guidance_classifier"]
    assert meta["component"] == "core.mlp" and meta["id"].startswith("core.mlp@")


def test_guidance_pulls_the_classifier_toward_the_target(tmp_path) -> None:
    weights = save_classifier(tmp_path / "guide.pt", num_classes=8, hidden=8)
    ref = classifier_ref(weights, 8, params={"hidden": [8]})
    results = {}
    for sign in (-1, 1):
        model = _model(classifier=ref, guidance={"lambda_g": 2.0, "sign": sign}, guidance_start=0)
        latents = model.generate_latents(_requests(), [0, 1, 2])
        with torch.no_grad():
            logits = model.classifier(model.ldm.decode_latents(latents))
        results[sign] = torch.nn.functional.cross_entropy(logits, _requests()["label"]).item()
    assert results[-1] < results[1]


def test_a_generation_without_au_adapter_conditions_on_text_alone() -> None:
    ctx = BuildContext(components=host_components)
    ldm = LatentDiffusion(LatentDiffusionParams(), ctx)
    model = GuidedGeneration(GuidedGenerationParams(**STEPS), ctx).wrap(ldm).eval()
    requests = _requests(2)
    del requests["meta"]
    items = model.generate_items(requests, [0, 1])
    assert len(items) == 2 and "au" not in items[0]


def test_invert_steps_above_steps_is_refused() -> None:
    with pytest.raises(ValueError, match="invert_steps 60 exceeds steps 50"):
        GuidedGenerationParams(invert_steps=60)


def test_guidance_start_is_a_0_based_index_so_the_default_guides_the_last_20_of_35(
    tmp_path, monkeypatch
) -> None:
    defaults = GuidedGenerationParams()
    assert (defaults.steps, defaults.invert_steps, defaults.guidance_start) == (50, 35, 15)
    doc = GuidedGenerationParams.model_fields["guidance_start"].description or ""
    assert "0-based" in doc and "last 20 of 35" in doc and "sg_start_step" in doc
    weights = save_classifier(tmp_path / "guide.pt", num_classes=8)
    model = _model(
        classifier=classifier_ref(weights, 8),
        steps=50,
        invert_steps=35,
        guidance_start=defaults.guidance_start,
    )
    guided_at: list[int] = []
    original = GuidedGeneration._guide

    def record(self, x, t, *args):
        guided_at.append(int(t))
        return original(self, x, t, *args)

    monkeypatch.setattr(GuidedGeneration, "_guide", record)
    model.generate_items(_requests(1), [0])
    window = model.ldm.timesteps(50)[:35]  # the inverted timesteps, lowest first
    denoising = [int(t) for t in reversed(window)]  # denoising step i runs at denoising[i]
    assert guided_at == denoising[15:] and len(guided_at) == 20
