"""Schedules per optimiser step or per epoch (``schedule.interval``), in isolation and in a run."""

from __future__ import annotations

from pathlib import Path

import _schedule_plugin
import pytest
import torch
import yaml
from _engine_helpers import make_config, probe_host
from asklepios.config import validate_config
from asklepios.config.model import ScheduleConfig
from asklepios.engine.run import run_experiment
from asklepios.optim import EpochLambdaLR, build_schedule

FAITHFUL_KNOWLEDGE_MASK = (
    Path(__file__).resolve().parents[2] / "examples/configs/knowledge_mask/synthetic_faithful.yaml"
)


def _linear_epoch_factor(epoch: int, constant: int, epochs: int) -> float:
    """pix2pixHD's per-epoch rule: base rate up to ``constant``, then a line to 0 at ``epochs``."""
    return 1.0 if epoch <= constant else 1.0 - (epoch - constant) / (epochs - constant)


def test_epoch_schedule_ignores_optimiser_steps_and_follows_set_epoch() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    config = ScheduleConfig(name="linear", interval="epoch", constant_epochs=2)
    schedule = build_schedule(optimizer, config, steps_per_epoch=7, epochs=6)
    assert isinstance(schedule, EpochLambdaLR)
    for epoch in range(6):
        schedule.set_epoch(epoch)
        for _ in range(25):  # far more steps than steps_per_epoch: the rate must not move
            optimizer.step()
            schedule.step()
            expected = 0.2 * _linear_epoch_factor(epoch, 2, 6)
            assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
    state = schedule.state_dict()
    again = build_schedule(optimizer, config, steps_per_epoch=7, epochs=6)
    again.load_state_dict(state)
    again.set_epoch(4)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * _linear_epoch_factor(4, 2, 6))


def test_step_interval_stays_the_default() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2)
    schedule = build_schedule(optimizer, ScheduleConfig(name="cosine"), 5, 2)
    assert type(schedule) is torch.optim.lr_scheduler.LambdaLR
    optimizer.step()
    schedule.step()
    assert optimizer.param_groups[0]["lr"] < 0.2


@pytest.mark.slow
@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_a_trainer_with_several_steps_per_batch_advances_an_epoch_schedule_once(
    tmp_path: Path, interval: str
) -> None:
    host = probe_host()
    host.add_plugin(_schedule_plugin, "sched")
    _schedule_plugin.LEARNING_RATES.clear()
    config = make_config(
        tmp_path,
        trainer={"type": "sched.three_steps"},
        schedule={"name": "linear", "interval": interval, "constant_epochs": 1},
        train={"epochs": 4, "eval_every": 4},
    )
    run_experiment(validate_config(config, host=host), host=host, quiet=True)
    rates = _schedule_plugin.LEARNING_RATES
    assert {epoch for epoch, _ in rates} == {0, 1, 2, 3}
    if interval == "epoch":
        for epoch, lr in rates:
            assert lr == pytest.approx(0.05 * _linear_epoch_factor(epoch, 1, 4))
    else:  # per optimiser step: three steps per batch use up the decay in the second epoch
        assert rates[-1][1] == pytest.approx(0.0)
        assert min(lr for epoch, lr in rates if epoch == 2) == pytest.approx(0.0)


def _original_rates(lr: float, niter: int, niter_decay: int) -> list[float]:
    """train.py: epoch 1..niter+niter_decay; after epoch e > niter, lr -= lr0 / niter_decay."""
    rates, current = [], lr
    for epoch in range(1, niter + niter_decay + 1):
        rates.append(current)
        if epoch > niter:
            current -= lr / niter_decay
    return rates


@pytest.mark.parametrize("frames", [1, 7])
def test_knowledge_mask_faithful_schedule_matches_the_original_per_epoch(frames: int) -> None:
    config = yaml.safe_load(FAITHFUL_KNOWLEDGE_MASK.read_text())
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
