"""panderm.finetune: layer-decay groups and BEiT's per-step warm-up + cosine (§6.4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _tiny import TINY, tiny_ctx
from asklepios_panderm.params import FinetuneTrainerParams, PanDermViTParams
from asklepios_panderm.trainers import FinetuneTrainer, cosine_schedule, layer_decay_groups
from asklepios_panderm.vit import PanDermViT
from asklepios_sdk.testing._fixtures import KitStepContext


def _beit_cosine(base, final, epochs, niter, warmup_epochs, start):
    """BEiT's utils.cosine_scheduler, transcribed."""
    warmup_iters = warmup_epochs * niter
    warmup = np.linspace(start, base, warmup_iters) if warmup_epochs > 0 else np.array([])
    iters = np.arange(epochs * niter - warmup_iters)
    tail = np.array(
        [final + 0.5 * (base - final) * (1 + math.cos(math.pi * i / len(iters))) for i in iters]
    )
    return np.concatenate((warmup, tail))


def test_schedule_is_beits_cosine_scheduler() -> None:
    ours = cosine_schedule(5e-4, 1e-6, 50, 7, 10, 0.0)
    np.testing.assert_allclose(ours, _beit_cosine(5e-4, 1e-6, 50, 7, 10, 0.0))
    assert ours[0] == 0.0 and ours[69] == 5e-4 and ours[-1] > 1e-6


def test_layer_decay_scales_and_weight_decay_exemptions() -> None:
    model = PanDermViT(PanDermViTParams(**TINY, rel_pos_bias=True), tiny_ctx())
    groups = layer_decay_groups(model, 0.65, 0.05)
    by_param = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    depth = 2

    def group(name: str) -> dict:
        return by_param[id(named[name])]

    assert group("encoder.patch_embed.proj.weight")["lr_scale"] == pytest.approx(
        0.65 ** (depth + 1)
    )
    assert group("encoder.blocks.0.attn.qkv.weight")["lr_scale"] == pytest.approx(0.65**depth)
    assert group("encoder.blocks.1.mlp.fc1.weight")["lr_scale"] == pytest.approx(0.65)
    assert group("head.weight")["lr_scale"] == 1.0
    assert group("encoder.blocks.1.attn.relative_position_bias_table")["lr_scale"] == pytest.approx(
        0.65
    )
    assert group("head.weight")["weight_decay"] == 0.05
    for exempt in (
        "head.bias",
        "encoder.cls_token",
        "encoder.blocks.0.gamma_1",
        "encoder.norm.weight",
    ):
        assert group(exempt)["weight_decay"] == 0.0, exempt
    assert "encoder.pos_embed" not in [n for g in groups for n in g.get("names", [])]
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())


def test_train_step_sets_every_group_rate_from_the_schedule() -> None:
    ctx = tiny_ctx().replace(epochs=3, steps_per_epoch=2)
    model = PanDermViT(PanDermViTParams(**TINY), ctx)
    trainer = FinetuneTrainer(FinetuneTrainerParams(warmup_epochs=1), ctx)
    groups = trainer.optimizer_groups(model)["main"]
    optimizer = torch.optim.AdamW([{**g, "lr": 1e-3 * g["lr_scale"]} for g in groups], lr=1e-3)
    from asklepios_panderm.losses import SoftTargetCrossEntropy
    from asklepios_panderm.params import SoftTargetCrossEntropyParams

    step = KitStepContext(
        model, SoftTargetCrossEntropy(SoftTargetCrossEntropyParams(), ctx), {"main": optimizer}
    )
    schedule = cosine_schedule(1e-3, 1e-6, 3, 2, 1, 0.0)
    batch = model.example_batch(ctx, 2)
    batch["label"] = torch.tensor([0, 2])
    for i in range(3):
        trainer.train_step(step, batch)
        for g in optimizer.param_groups:
            assert g["lr"] == pytest.approx(schedule[i] * g["lr_scale"])
    assert step.global_step == 3
