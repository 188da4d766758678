"""Spec §12 check 5 and §7: the adversarial trainer's update order, sampling and smoke run."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import pytest
import torch
from asklepios_knowledge_mask.adversarial import AdversarialTrainer
from asklepios_knowledge_mask.discriminator import feature_matching
from asklepios_knowledge_mask.generator import FundusVideoGenerator
from asklepios_knowledge_mask.params import (
    AdversarialTrainerParams,
    FundusVideoGeneratorParams,
    KnowledgeAwareDiscriminatorParams,
    MaskedPatchNCEParams,
)
from asklepios_sdk import BuildContext, ComponentError
from torch import nn

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def _graph_size(tensor: torch.Tensor) -> int:
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return len(seen)


class RecordingStep:
    """A CPU StepContext that records calls, losses, graph sizes and D-gradient state."""

    def __init__(self, model: nn.Module, groups: dict[str, list[nn.Parameter]]) -> None:
        self.model = model
        self.loss = None
        self.optimizers = {
            name: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
            for name, params in groups.items()
        }
        self.epoch, self.global_step, self.device = 0, 0, torch.device("cpu")
        self.log: list[tuple[str, str]] = []
        self.losses: list[float] = []
        self.graph_sizes: list[int] = []
        self.d_grads_clean: list[bool] = []

    def autocast(self) -> Any:
        return nullcontext()

    def backward(self, loss: torch.Tensor, optimizer: str = "main") -> None:
        self.log.append(("backward", optimizer))
        self.losses.append(float(loss.detach()))
        if optimizer == "main":
            self.graph_sizes.append(_graph_size(loss))
        else:
            params = self.optimizers["discriminator"].param_groups[0]["params"]
            self.d_grads_clean.append(all(p.grad is None for p in params))
        loss.backward()

    def step(self, optimizer: str = "main") -> None:
        self.log.append(("step", optimizer))
        self.optimizers[optimizer].step()
        self.optimizers[optimizer].zero_grad()
        self.global_step += 1


def _setup(
    mode: str = "fixed", frames: int = 5, size: int = 32, ngf: int = 4, **extra: Any
) -> tuple[Any, ...]:
    torch.manual_seed(0)
    model = FundusVideoGenerator(FundusVideoGeneratorParams(ngf=ngf, n_blocks=2), CTX)
    params = AdversarialTrainerParams(
        mode=mode,
        discriminator=KnowledgeAwareDiscriminatorParams(ndf=8),
        nce=MaskedPatchNCEParams(num_patches=32, nc=16),
        **extra,
    )
    trainer = AdversarialTrainer(params, CTX)
    groups = trainer.optimizer_groups(model)
    step = RecordingStep(model, groups)
    gen = torch.Generator().manual_seed(1)
    video = torch.rand(2, frames, 1, size, size, generator=gen).expand(-1, -1, 3, -1, -1) * 2 - 1
    batch = {
        "image": torch.rand(2, 3, size, size, generator=gen) * 2 - 1,
        "video": video.contiguous(),
        "knowledge_mask": (torch.rand(2, 1, size, size, generator=gen) > 0.5).float(),
    }
    return model, trainer, step, batch


def test_optimizer_groups_are_disjoint_and_named() -> None:
    model, trainer, _, _ = _setup()
    groups = trainer.optimizer_groups(model)  # a second call reuses the attached state
    assert set(groups) == {"main", "discriminator", "projection"}
    ids = [{id(p) for p in ps} for ps in groups.values()]
    assert sum(len(s) for s in ids) == len(set().union(*ids))
    g_params = {id(p) for p in model.netG.parameters()}
    assert {id(p) for p in groups["main"]} == g_params
    _, faithful, _, _ = _setup("faithful")
    assert "projection" not in faithful.optimizer_groups(
        FundusVideoGenerator(FundusVideoGeneratorParams(ngf=4), CTX)
    )


def test_two_video_smoke_run_update_order_and_truncated_backprop() -> None:
    model, trainer, step, batch = _setup(frames=5, size=64, ngf=8)  # the spec's smoke size
    heads_before = [p.detach().clone() for p in trainer.aux.nce.head.parameters()]
    g_before = model.netG.model[1].weight.detach().clone()
    out = trainer.train_step(step, batch)
    per_step = [
        ("backward", "main"),
        ("step", "main"),
        ("step", "projection"),
        ("backward", "discriminator"),
        ("step", "discriminator"),
    ]
    assert step.log == per_step * 5  # one G, F, D update per window step: M = 5 steps
    assert all(torch.isfinite(torch.tensor(step.losses)))
    assert all(step.d_grads_clean)  # D gradients of L_G are zeroed before L_D's backward
    # step >= 1 graphs never reach back into earlier steps: the same size at every step
    assert len(set(step.graph_sizes[1:])) == 1
    assert int(trainer.aux.videos_seen) == 2
    expected = {"G_GAN", "G_GAN_temp", "G_GAN_Feat", "G_seg", "G_NCE", "D_real", "D_fake"}
    assert expected | {"D_real_temp", "D_fake_temp", "loss_D"} <= set(out.terms)
    assert all(torch.isfinite(v) for v in out.terms.values()) and torch.isfinite(out.total)
    assert not torch.equal(model.netG.model[1].weight, g_before)
    heads_after = list(trainer.aux.nce.head.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(heads_before, heads_after, strict=True))


def test_graph_size_does_not_grow_with_video_length() -> None:
    sizes = []
    for frames in (3, 6):
        _, trainer, step, batch = _setup(frames=frames, size=32)
        trainer.train_step(step, batch)
        sizes.append(max(step.graph_sizes))
    assert sizes[0] == sizes[1]


def test_faithful_mode_never_updates_projection_heads() -> None:
    _, trainer, step, batch = _setup("faithful", frames=3, size=32)
    heads_before = [p.detach().clone() for p in trainer.aux.nce.head.parameters()]
    trainer.train_step(step, batch)
    assert ("step", "projection") not in step.log
    for a, b in zip(heads_before, trainer.aux.nce.head.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["fixed", "faithful"])
def test_feature_matching_pairs(mode: str) -> None:
    model, trainer, _, batch = _setup(mode)
    cf, target, mask = batch["image"], batch["video"][:, :3, 0], batch["knowledge_mask"]
    fake = model({"image": cf, "context": cf})["logits"]
    g_terms, _ = trainer._generator_terms(model, cf, fake, target, mask)
    disc = trainer.aux.discriminator
    real, fake_pair = torch.cat([cf, target], 1), torch.cat([cf, fake], 1)
    if mode == "faithful":  # unmasked fake against masked real (the original's quirk)
        expected = feature_matching(disc(fake_pair), disc(real * mask), 3)
    else:
        expected = feature_matching(disc(fake_pair), disc(real), 3) + feature_matching(
            disc(fake_pair * mask), disc(real * mask), 3
        )
    value = float(g_terms["G_GAN_Feat"].detach())
    assert value == pytest.approx(float(expected.detach()), rel=1e-5)


class ContextSpy(nn.Module):
    """Wraps the generator and records the contexts and outputs of every step."""

    def __init__(self, inner: FundusVideoGenerator) -> None:
        super().__init__()
        self.inner = inner
        self.contexts: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        self.contexts.append(batch["context"].detach().clone())
        out = self.inner(batch)
        self.outputs.append(out["logits"].detach().clone())
        return out


@pytest.mark.parametrize("seen", [0, 1000])
def test_scheduled_sampling_contexts(seen: int) -> None:
    inner, trainer, _, batch = _setup(frames=5, size=32)
    spy = ContextSpy(inner)
    step = RecordingStep(spy, trainer.optimizer_groups(spy))
    trainer.aux.videos_seen.fill_(seen)
    torch.manual_seed(5)
    trainer.train_step(step, batch)
    video = batch["video"]
    assert torch.equal(spy.contexts[0], batch["image"])
    used_generated = 0
    for n in range(1, 5):
        real = video[:, [n - 1, min(n, 4), min(n + 1, 4)], 0]
        is_generated = torch.equal(spy.contexts[n], spy.outputs[n - 1])
        assert is_generated or torch.equal(spy.contexts[n], real)
        used_generated += is_generated
    if seen >= 1000:
        assert used_generated == 4


@pytest.mark.parametrize("done", [0, 98, 99, 999])
def test_sampling_probability_counts_the_current_video(done: int) -> None:
    # train.py: total_steps += batchSize before the forward pass, then
    # aug = random.choice([0, 1] + [1] * (total_steps // 100)) while total_steps < 1000
    _, trainer, step, batch = _setup(frames=2, size=32)
    trainer.aux.videos_seen.fill_(done)
    total_steps = done + batch["image"].shape[0]
    choices = [0, 1] + [1] * (total_steps // 100)
    expected = sum(choices) / len(choices) if total_steps < 1000 else 1.0
    out = trainer.train_step(step, batch)
    assert float(out.terms["p_generated"]) == pytest.approx(expected)
    assert int(trainer.aux.videos_seen) == total_steps


def test_missing_mask_is_a_clear_error() -> None:
    _, trainer, step, batch = _setup(frames=2, size=32)
    del batch["knowledge_mask"]
    with pytest.raises(ComponentError, match=r"knowledge_mask\.mask"):
        trainer.train_step(step, batch)


def test_multi_process_runs_are_refused() -> None:
    with pytest.raises(ComponentError, match="one process"):
        AdversarialTrainer(AdversarialTrainerParams(), BuildContext(world_size=2))
