"""Source diffusion model: loss terms against scipy/numpy, save/load round trip, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asklepios_diffusion_tta._diffusion import DiffusionSchedule, linear_betas
from asklepios_diffusion_tta.ddpm_adapter import load_diffusion_model
from asklepios_diffusion_tta.params import DiffusionTrainerParams, EpsMSEParams, SourceUNetParams
from asklepios_diffusion_tta.source_diffusion import (
    DiffusionTrainer,
    EpsMSE,
    SourceUNet,
    diffusion_loss,
    discretized_gaussian_log_likelihood,
    normal_kl,
)
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from scipy.stats import norm

TINY = {"block_out_channels": [8, 16], "norm_num_groups": 4}
SCHEDULE = DiffusionSchedule(linear_betas(), np.arange(1000))


def test_normal_kl_and_discretized_likelihood_match_scipy() -> None:
    m1, lv1, m2, lv2 = 0.3, -1.2, -0.1, -0.4
    expected = (
        math.log(math.exp(lv2 / 2) / math.exp(lv1 / 2))
        + (math.exp(lv1) + (m1 - m2) ** 2) / (2 * math.exp(lv2))
        - 0.5
    )
    got = normal_kl(*(torch.tensor(v, dtype=torch.float64) for v in (m1, lv1, m2, lv2)))
    assert float(got) == pytest.approx(expected, rel=1e-12)
    x = torch.tensor([-1.0, -0.2, 0.5, 1.0], dtype=torch.float64)
    mean = torch.tensor([-0.9, 0.0, 0.45, 0.8], dtype=torch.float64)
    log_scale = torch.full((4,), math.log(0.1), dtype=torch.float64)
    got = discretized_gaussian_log_likelihood(x, mean, log_scale).numpy()
    xs, ms = x.numpy(), mean.numpy()
    upper = norm.cdf((xs - ms + 1 / 255) / 0.1)
    lower = norm.cdf((xs - ms - 1 / 255) / 0.1)
    expected = np.log(np.where(xs < -0.999, upper, np.where(xs > 0.999, 1 - lower, upper - lower)))
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_loss_terms_against_per_sample_reference() -> None:
    loss = EpsMSE(EpsMSEParams(), BuildContext())
    outputs, batch = loss.example_inputs(BuildContext())
    result = loss(outputs, batch)
    eps, v = outputs["logits"][:, :3].detach(), outputs["logits"][:, 3:].detach()
    assert float(result.terms["mse"].detach()) == pytest.approx(
        float(((eps - outputs["eps_target"]) ** 2).mean())
    )
    per = []
    for i, t in enumerate(outputs["timesteps"].tolist()):
        x_t, x0 = outputs["x_t"][i : i + 1], outputs["x_start"][i : i + 1]
        x0_hat = SCHEDULE.predict_x0(x_t, t, eps[i : i + 1]).clamp(-1, 1)
        mean = SCHEDULE.posterior_mean(x0_hat, x_t, t)
        log_var = SCHEDULE.model_log_variance(t, "learned_range", v[i : i + 1], x_t)
        if t == 0:
            value = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).mean()
        else:
            true_mean = SCHEDULE.posterior_mean(x0, x_t, t)
            true_lv = torch.tensor(SCHEDULE.posterior_log_variance_clipped[t])
            value = normal_kl(true_mean, true_lv, mean, log_var).mean()
        per.append(float(value) / math.log(2))
    assert float(result.terms["vlb"].detach()) == pytest.approx(
        np.mean(per) * 1000 * 0.001, rel=1e-5
    )
    result.total.backward()
    assert outputs["logits"].grad is not None
    with pytest.raises(ComponentError, match="source_unet"):
        loss({"logits": outputs["logits"]}, batch)


def test_mse_only_without_learned_variance() -> None:
    x0 = torch.zeros(2, 3, 4, 4)
    outputs = {
        "logits": torch.ones(2, 3, 4, 4),
        "eps_target": torch.zeros(2, 3, 4, 4),
        "x_start": x0,
        "x_t": x0,
        "timesteps": torch.tensor([3, 7]),
    }
    result = diffusion_loss(outputs, SCHEDULE)
    assert set(result.terms) == {"mse"} and float(result.total) == 1.0


@pytest.mark.slow
def test_save_pretrained_round_trip_and_training_lowers_the_loss(tmp_path) -> None:
    ctx = BuildContext(data=DataFacts(num_classes=2, in_channels=3, image_size=(8, 8)))
    torch.manual_seed(0)
    model = SourceUNet(SourceUNetParams(**TINY, learn_sigma=True), ctx)
    target = model.save_pretrained(tmp_path / "source_diffusion")
    model.save_pretrained(tmp_path / "source_diffusion")  # overwrite atomically
    unet, betas, variance = load_diffusion_model(target)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([10, 900])
    torch.testing.assert_close(unet(x, t).sample, model.eps(x, t))
    np.testing.assert_allclose(betas, linear_betas())
    assert variance == "fixed_small" and unet.config.out_channels == 6

    class _Step:
        def __init__(self, model):
            self.model = model
            self.opt = torch.optim.Adam(model.parameters(), lr=3e-3)

        def autocast(self):
            return torch.autocast("cpu", enabled=False)

        def backward(self, loss, optimizer="main"):
            loss.backward()

        def step(self, optimizer="main"):
            self.opt.step()
            self.opt.zero_grad()

    gen = torch.Generator().manual_seed(0)
    images = torch.zeros(4, 3, 8, 8)
    images[:, :, 2:6, 2:6] = 1.0
    batch = {
        "image": images,
        "timesteps": torch.tensor([0, 50, 400, 900]),
        "noise": torch.randn(4, 3, 8, 8, generator=gen),
    }
    trainer = DiffusionTrainer(DiffusionTrainerParams(), BuildContext())
    step = _Step(model)
    losses = [trainer.train_step(step, batch).detached_terms()["mse"] for _ in range(8)]
    assert losses[-1] < losses[0]
    with pytest.raises(ComponentError, match="source_unet"):
        trainer.train_step(_Step(torch.nn.Linear(2, 2)), {"image": images})
