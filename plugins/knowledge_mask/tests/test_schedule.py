"""The faithful example's learning-rate schedule against the original's per-epoch rule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from asklepios.config.model import ScheduleConfig
from asklepios.optim import build_schedule

CONFIG = (
    Path(__file__).resolve().parents[3] / "examples/configs/knowledge_mask/synthetic_faithful.yaml"
)


def _original_rates(lr: float, niter: int, niter_decay: int) -> list[float]:
    """train.py: epoch 1..niter+niter_decay; after epoch e > niter, lr -= lr0 / niter_decay."""
    rates, current = [], lr
    for epoch in range(1, niter + niter_decay + 1):
        rates.append(current)
        if epoch > niter:
            current -= lr / niter_decay
    return rates


@pytest.mark.skipif(not CONFIG.is_file(), reason="run from a checkout with examples/")
@pytest.mark.parametrize("frames", [1, 7])
def test_faithful_schedule_matches_the_original_per_epoch(frames: int) -> None:
    config = yaml.safe_load(CONFIG.read_text())
    lr = config["optimizer"]["lr"]
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    videos = 3
    schedule = build_schedule(
        optimizer, ScheduleConfig(**config["schedule"]), steps_per_epoch=videos, epochs=50
    )
    seen = []
    for epoch in range(50):
        schedule.set_epoch(epoch)  # what the training loop does at the start of each epoch
        for _ in range(videos * frames):  # one optimiser step per window step of each video
            seen.append((epoch, optimizer.param_groups[0]["lr"]))
            optimizer.step()
            schedule.step()
    expected = _original_rates(lr, niter=10, niter_decay=40)
    for epoch, rate in seen:
        assert rate == pytest.approx(expected[epoch], abs=1e-15)
