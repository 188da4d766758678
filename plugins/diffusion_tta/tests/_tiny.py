"""Tiny diffusers models the tests save locally (no download ever happens)."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_unet(path: Path, out_channels: int = 3, sample_size: int = 16) -> Path:
    """Save a random 2-level ``UNet2DModel`` and a default DDPM scheduler under ``path``."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=sample_size,
        in_channels=3,
        out_channels=out_channels,
        block_out_channels=(8, 16),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )
    unet.save_pretrained(path / "unet")
    DDPMScheduler(num_train_timesteps=1000).save_pretrained(path / "scheduler")
    return path
