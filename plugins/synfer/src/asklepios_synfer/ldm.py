"""The frozen latent diffusion model: Stable Diffusion parts from a local folder, or a tiny one.

``synfer.ldm`` holds the VAE, the CLIP text encoder and tokenizer, the UNet and the DDIM
schedule of a Stable Diffusion v1.5 folder in diffusers layout (``unet/``, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``), read from local files only. Optional LoRA:
stage-1 weights loaded through diffusers' own LoRA loading (peft layers), or fresh LoRA layers
(peft ``LoraConfig``) to fine-tune. Without a folder, the same classes are built from small
configs with random weights (:func:`tiny_parts`), which is what the tests and the demo use;
:func:`write_tiny_pipeline` writes such a model as a diffusers folder.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, BuildContext, ComponentError, WeightsError
from asklepios_sdk.io import write_dir_atomic
from torch import Tensor, nn

from asklepios_synfer.params import LatentDiffusionParams, TinyLDMConfig

__all__ = ["LatentDiffusion", "tiny_parts", "write_tiny_pipeline"]

SD15_SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
}
"""The DDIM schedule of Stable Diffusion v1.5 (its ``scheduler_config.json``)."""


def _byte_vocab() -> dict[str, int]:
    """Return a CLIP BPE vocabulary of single bytes (no merges): every text tokenises."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = list(printable), 0
    for byte in range(256):
        if byte not in printable:
            chars.append(256 + extra)
            extra += 1
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for code in chars:
            vocab[chr(code) + suffix] = len(vocab)
    return vocab


def _write_tokenizer(folder: Path, max_length: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(_byte_vocab()))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    config = {"model_max_length": max_length, "tokenizer_class": "CLIPTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def tiny_parts(cfg: TinyLDMConfig) -> dict[str, Any]:
    """Build a small Stable-Diffusion-shaped model from configs, with seeded random weights."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        _write_tokenizer(Path(tmp), cfg.max_length)
        tokenizer = CLIPTokenizer.from_pretrained(tmp, local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        levels = len(cfg.unet_channels)
        unet = UNet2DConditionModel(
            sample_size=cfg.resolution // 2,
            in_channels=4,
            out_channels=4,
            block_out_channels=tuple(cfg.unet_channels),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D",) * (levels - 1) + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (levels - 1),
            cross_attention_dim=cfg.text_dim,
            attention_head_dim=max(1, cfg.unet_channels[0] // 8),
            norm_num_groups=cfg.norm_groups,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=tuple(cfg.vae_channels),
            latent_channels=4,
            norm_num_groups=cfg.norm_groups,
            sample_size=cfg.resolution,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(_byte_vocab()),
                hidden_size=cfg.text_dim,
                intermediate_size=cfg.text_dim * 2,
                num_attention_heads=4,
                num_hidden_layers=cfg.text_layers,
                max_position_embeddings=cfg.max_length,
                bos_token_id=0,
                eos_token_id=1,
                pad_token_id=1,
            )
        )
    scheduler = DDIMScheduler(**SD15_SCHEDULER)
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def write_tiny_pipeline(directory: str | Path, cfg: TinyLDMConfig | None = None) -> Path:
    """Write :func:`tiny_parts` as a diffusers-layout folder (atomically); return it."""
    parts = tiny_parts(cfg or TinyLDMConfig())

    def write(tmp: Path) -> None:
        for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            parts[name].save_pretrained(tmp / name)
        index = {
            "_class_name": "StableDiffusionPipeline",
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "scheduler": ["diffusers", "DDIMScheduler"],
        }
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2))

    return write_dir_atomic(directory, write)


def _on_meta() -> bool:
    return torch.empty(0).device.type == "meta"


def _load_parts(root: Path) -> dict[str, Any]:
    """Load the Stable Diffusion parts of a local diffusers folder (no download)."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    missing = [n for n in ("unet", "vae", "text_encoder", "tokenizer") if not (root / n).is_dir()]
    if missing:
        raise WeightsError(
            f"synfer.ldm: {root} is not a Stable Diffusion folder in diffusers layout (no "
            f"{missing}); point model_dir at e.g. a local stable-diffusion-v1-5 snapshot"
        )
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    if _on_meta():  # shapes only (validate --deep): configs, no weights read
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(root / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(root / "vae"))
        text_config = CLIPTextConfig.from_pretrained(root / "text_encoder", local_files_only=True)
        text_encoder = CLIPTextModel(text_config)
    else:
        try:
            unet = UNet2DConditionModel.from_pretrained(root / "unet", local_files_only=True)
            vae = AutoencoderKL.from_pretrained(root / "vae", local_files_only=True)
            text_encoder = CLIPTextModel.from_pretrained(
                root / "text_encoder", local_files_only=True
            )
        except (OSError, ValueError) as err:
            raise WeightsError(f"synfer.ldm: cannot load {root}: {err}") from err
    if (root / "scheduler" / "scheduler_config.json").is_file():
        scheduler = DDIMScheduler.from_pretrained(root / "scheduler", local_files_only=True)
    else:
        scheduler = DDIMScheduler(**SD15_SCHEDULER)
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


class LatentDiffusion(Backbone):
    """Hold frozen Stable Diffusion parts (local folder or tiny random) with optional LoRA.

    ``forward(batch)`` is the latent-diffusion training forward: images (``[B, C, H, W]`` in
    [0, 1]) are encoded by the VAE and scaled, noised at a uniform timestep, and the UNet
    predicts ε from the caption embedding (``batch["text"]``), followed by any extra
    conditioning tokens an adapter put in ``batch["cond_tokens"]`` (the AU tokens). Outputs:
    ``logits`` (ε̂, ``[B, 4, h, w]``), ``eps_target``, ``timesteps``, ``features`` (ε̂ pooled).
    Every weight is frozen except LoRA layers added with ``lora_rank``.
    """

    unet: nn.Module
    vae: nn.Module
    text_encoder: nn.Module
    alphas_cumprod: Tensor

    def __init__(self, params: LatentDiffusionParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        if params.model_dir is not None:
            parts = _load_parts(Path(params.model_dir))
            default_resolution = 512
        else:
            parts = tiny_parts(params.tiny)
            default_resolution = params.tiny.resolution
        self.unet, self.vae = parts["unet"], parts["vae"]
        self.text_encoder, self.tokenizer = parts["text_encoder"], parts["tokenizer"]
        with torch.device("cpu"):  # the schedule is numbers, also in a meta-device skeleton
            self.scheduler = type(parts["scheduler"]).from_config(parts["scheduler"].config)
        self.resolution = params.resolution or default_resolution
        config_scale = getattr(self.vae.config, "scaling_factor", 0.18215)
        self.scaling_factor = float(params.scaling_factor or config_scale)
        self.requires_grad_(False)
        if params.lora_rank is not None:
            self._add_lora(params.lora_rank, params.lora_alpha or params.lora_rank)
        elif params.lora_dir is not None and not _on_meta():
            self._load_lora(params.lora_dir)
        with torch.device("cpu"):
            alphas = torch.as_tensor(self.scheduler.alphas_cumprod, dtype=torch.float64)
            self.register_buffer("alphas_cumprod", alphas.float(), persistent=False)
        self.final_alpha = 1.0 if self.scheduler.config.set_alpha_to_one else float(alphas[0])
        self.feature_dim = int(cast(Any, self.unet).config.out_channels)

    # -- LoRA -------------------------------------------------------------------------------

    def _add_lora(self, rank: int, alpha: int) -> None:
        from peft import LoraConfig

        config = LoraConfig(
            r=rank,
            lora_alpha=alpha,
            init_lora_weights="gaussian",
            target_modules=list(self.params.lora_targets),
        )
        cast(Any, self.unet).add_adapter(config)
        for name, param in self.unet.named_parameters():
            param.requires_grad_("lora_" in name)

    def _load_lora(self, source: str) -> None:
        from diffusers.loaders import StableDiffusionLoraLoaderMixin

        path = Path(source)
        try:
            state, alphas = StableDiffusionLoraLoaderMixin.lora_state_dict(
                str(path), local_files_only=True
            )
        except (OSError, ValueError) as err:
            raise WeightsError(f"synfer.ldm: cannot read LoRA weights at {path}: {err}") from err
        unet_state = {k: v for k, v in state.items() if k.startswith("unet.")}
        if not unet_state:
            raise WeightsError(f"synfer.ldm: {path} holds no UNet LoRA weights ('unet.*' keys)")
        cast(Any, self.unet).load_lora_adapter(unet_state, network_alphas=alphas, prefix="unet")
        self.requires_grad_(False)

    def lora_state_dict(self) -> dict[str, Tensor]:
        """Return the UNet's LoRA weights in diffusers' format (``unet.``-prefixed keys)."""
        from peft.utils import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.unet)
        return {f"unet.{k}": v.detach().cpu().contiguous() for k, v in state.items()}

    def save_lora(self, directory: str | Path) -> Path:
        """Write the LoRA weights as ``pytorch_lora_weights.safetensors`` (atomic folder)."""
        from safetensors.torch import save_file

        state = self.lora_state_dict()
        if not state:
            raise ComponentError("synfer.ldm: no LoRA layers to save (set lora_rank)")
        return write_dir_atomic(
            directory, lambda tmp: save_file(state, str(tmp / "pytorch_lora_weights.safetensors"))
        )

    # -- the parts the generation loop uses --------------------------------------------------

    @property
    def max_length(self) -> int:
        """Tokens per prompt (77 for SD 1.5)."""
        return int(self.tokenizer.model_max_length)

    def encode_text(self, texts: list[str]) -> Tensor:
        """Return the text encoder's last hidden states ``[B, L, D]`` for ``texts``."""
        device = self.alphas_cumprod.device
        ids = self.tokenizer(
            list(texts),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(device)
        with torch.no_grad():
            return cast(Tensor, self.text_encoder(ids)[0])

    def to_model_space(self, images: Tensor) -> Tensor:
        """Map ``[B, C, H, W]`` images in [0, 1] to 3 channels at the resolution, in [-1, 1]."""
        images = images.float()
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            images = F.interpolate(images, size=(self.resolution,) * 2, mode="bilinear")
        return images.clamp(0, 1) * 2 - 1

    def encode_images(self, images: Tensor) -> Tensor:
        """Return the scaled VAE latents (the distribution's mean) of images in [0, 1]."""
        with torch.no_grad():
            posterior = cast(Any, self.vae).encode(self.to_model_space(images)).latent_dist
            return cast(Tensor, posterior.mean * self.scaling_factor)

    def decode_latents(self, latents: Tensor) -> Tensor:
        """Return images in [0, 1] decoded from scaled latents (differentiable)."""
        decoded = cast(Any, self.vae).decode(latents / self.scaling_factor).sample
        return cast(Tensor, (decoded + 1) / 2)

    def eps(self, x: Tensor, t: int | Tensor, cond: Tensor) -> Tensor:
        """Return ε_θ(x, t, cond): the UNet's noise prediction."""
        timestep = torch.as_tensor(t, device=x.device)
        if timestep.dim() == 0:
            timestep = timestep.expand(x.shape[0])
        return cast(Tensor, self.unet(x, timestep, encoder_hidden_states=cond).sample)

    def timesteps(self, steps: int) -> list[int]:
        """Return the DDIM schedule's timesteps for ``steps`` steps, ascending."""
        self.scheduler.set_timesteps(steps)
        return sorted(int(t) for t in self.scheduler.timesteps)

    # -- training forward ------------------------------------------------------------------------

    def condition(self, batch: dict[str, Any]) -> Tensor:
        """Return the text embeddings of ``batch["text"]`` followed by ``cond_tokens``."""
        texts = batch.get("text")
        if texts is None:
            raise ComponentError(
                "synfer.ldm: the batch has no 'text' (captions); use a caption dataset such "
                "as synfer.fetext"
            )
        cond = self.encode_text([str(t) for t in texts])
        extra = batch.get("cond_tokens")
        return torch.cat([cond, extra.to(cond.dtype)], dim=1) if extra is not None else cond

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        latents = self.encode_images(batch["image"])
        n = latents.shape[0]
        t = batch.get("timesteps")
        if t is None:
            t = torch.randint(0, len(self.alphas_cumprod), (n,), device=latents.device)
        noise = batch.get("noise")
        if noise is None:
            noise = torch.randn_like(latents)
        alpha = self.alphas_cumprod[t].view(-1, 1, 1, 1).to(latents.dtype)
        x_t = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
        out = self.eps(x_t, t, self.condition(batch))
        return {
            "logits": out,
            "features": out.mean(dim=(2, 3)),
            "eps_target": noise,
            "timesteps": t,
        }

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return images in [0, 1], captions and AU vectors (the FEText sample contract)."""
        gen = torch.Generator().manual_seed(0)
        side = self.resolution
        return {
            "image": torch.rand(batch_size, 3, side, side, generator=gen),
            "text": [f"a photo of a face, example {i}" for i in range(batch_size)],
            "meta": {"au": (torch.rand(batch_size, 41, generator=gen) > 0.5).float()},
        }
