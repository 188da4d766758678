"""synfer.ldm: a diffusers folder on disk, LoRA through diffusers/peft, the training forward."""

from __future__ import annotations

import re

import pytest
import torch
from asklepios_sdk import BuildContext, WeightsError
from asklepios_synfer.ldm import LatentDiffusion, write_tiny_pipeline
from asklepios_synfer.params import LatentDiffusionParams, TinyLDMConfig


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_written_diffusers_folder_loads_the_same_model(tmp_path) -> None:
    folder = write_tiny_pipeline(tmp_path / "sd", TinyLDMConfig(seed=3))
    assert {p.name for p in folder.iterdir()} >= {"unet", "vae", "text_encoder", "tokenizer"}
    loaded = LatentDiffusion(
        LatentDiffusionParams(model_dir=str(folder), resolution=16), BuildContext()
    )
    memory = LatentDiffusion(LatentDiffusionParams(tiny=TinyLDMConfig(seed=3)), BuildContext())
    for part in ("unet", "vae", "text_encoder"):
        assert _same(getattr(loaded, part), getattr(memory, part))
    assert loaded.encode_text(["a face"]).shape == (1, 16, 32)
    assert not any(p.requires_grad for p in loaded.parameters())  # frozen


def test_on_the_meta_device_only_configs_are_read(tmp_path) -> None:
    folder = write_tiny_pipeline(tmp_path / "sd")
    for weights in folder.rglob("*.safetensors"):
        weights.write_bytes(b"not a weights file")  # a skeleton build must not read them
    with torch.device("meta"):
        model = LatentDiffusion(LatentDiffusionParams(model_dir=str(folder)), BuildContext())
    assert next(model.unet.parameters()).device.type == "meta"
    with pytest.raises(WeightsError, match="cannot load"):
        LatentDiffusion(LatentDiffusionParams(model_dir=str(folder)), BuildContext())


def test_a_folder_that_is_not_stable_diffusion_says_what_is_missing(tmp_path) -> None:
    (tmp_path / "unet").mkdir()
    with pytest.raises(WeightsError, match=r"no \['vae', 'text_encoder', 'tokenizer'\]"):
        LatentDiffusion(LatentDiffusionParams(model_dir=str(tmp_path)), BuildContext())


def test_lora_weights_round_trip_through_diffusers_loading(tmp_path) -> None:
    trained = LatentDiffusion(LatentDiffusionParams(lora_rank=2), BuildContext())
    trainable = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for name, param in trained.unet.named_parameters():
            if "lora_B" in name:
                param.normal_()  # lora_B starts at zero: make the adapter do something
    trained.save_lora(tmp_path / "lora")
    assert (tmp_path / "lora" / "pytorch_lora_weights.safetensors").is_file()
    loaded = LatentDiffusion(LatentDiffusionParams(lora_dir=str(tmp_path / "lora")), BuildContext())
    plain = LatentDiffusion(LatentDiffusionParams(), BuildContext())

    def lora(model: LatentDiffusion) -> dict[str, torch.Tensor]:
        return {
            re.sub(r"\.default(_\d+)?\.", ".", k): v
            for k, v in model.unet.state_dict().items()
            if "lora" in k
        }

    assert lora(trained).keys() == lora(loaded).keys()
    assert all(torch.equal(lora(trained)[k], lora(loaded)[k]) for k in lora(trained))
    batch = trained.example_batch(BuildContext())
    batch.update(timesteps=torch.tensor([10, 500]), noise=torch.randn(2, 4, 8, 8))
    assert torch.allclose(trained(batch)["logits"], loaded(batch)["logits"], atol=1e-5)
    assert not torch.allclose(trained(batch)["logits"], plain(batch)["logits"], atol=1e-3)


def test_lora_dir_and_lora_rank_exclude_each_other(tmp_path) -> None:
    with pytest.raises(ValueError, match="not both"):
        LatentDiffusionParams(lora_dir=str(tmp_path), lora_rank=4)


def test_the_training_forward_noises_the_scaled_latent() -> None:
    model = LatentDiffusion(LatentDiffusionParams(), BuildContext())
    batch = model.example_batch(BuildContext())
    noise = torch.randn(2, 4, 8, 8)
    t = torch.tensor([0, 999])
    out = model({**batch, "noise": noise, "timesteps": t})
    z0 = model.encode_images(batch["image"])
    alpha = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = alpha.sqrt() * z0 + (1 - alpha).sqrt() * noise
    expected = model.eps(x_t, t, model.encode_text(batch["text"]))
    assert torch.allclose(out["logits"], expected, atol=1e-6)
    assert torch.equal(out["eps_target"], noise) and model.scaling_factor == pytest.approx(0.18215)
