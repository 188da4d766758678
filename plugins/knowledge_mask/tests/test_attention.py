"""Spec §12 check 7: the RECONSTRUCTED knowledge-boosted attention adapter."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from asklepios_knowledge_mask.adversarial import AdversarialTrainer
from asklepios_knowledge_mask.attention import KnowledgeAttention
from asklepios_knowledge_mask.generator import FundusVideoGenerator
from asklepios_knowledge_mask.params import (
    AdversarialTrainerParams,
    FundusVideoGeneratorParams,
    KnowledgeAttentionParams,
    KnowledgeAwareDiscriminatorParams,
    MaskedPatchNCEParams,
)
from asklepios_sdk import BuildContext, ComponentError

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def _wrapped(mode: str = "spatial_gate") -> tuple[FundusVideoGenerator, KnowledgeAttention]:
    torch.manual_seed(0)
    generator = FundusVideoGenerator(FundusVideoGeneratorParams(ngf=4, n_blocks=1), CTX)
    adapter = KnowledgeAttention(KnowledgeAttentionParams(mode=mode, head_channels=8), CTX)
    return generator, adapter.wrap(generator)


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "image": torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1,
        "context": torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1,
        "knowledge_mask": (torch.rand(2, 1, 32, 32, generator=gen) > 0.5).float(),
    }


@pytest.mark.parametrize("mode", ["spatial_gate", "cross_attention"])
def test_identity_at_init_for_any_mask(mode: str) -> None:
    generator, wrapped = _wrapped(mode)
    wrapped.train()
    for seed in (0, 1):
        batch = _batch(seed)
        assert torch.equal(wrapped(batch)["logits"], generator(batch)["logits"])
    video_batch = {"image": _batch()["image"], "video": torch.zeros(2, 4, 3, 32, 32)}
    wrapped.eval()
    assert torch.equal(wrapped(video_batch)["video"], generator(video_batch)["video"])


@pytest.mark.parametrize("mode", ["spatial_gate", "cross_attention"])
def test_inference_reads_only_cf_and_context(mode: str) -> None:
    _, wrapped = _wrapped(mode)
    with torch.no_grad():
        wrapped.gamma.fill_(0.7)
    batch = _batch()
    wrapped.eval()
    plain = {"image": batch["image"], "context": batch["context"]}
    assert torch.equal(wrapped(batch)["logits"], wrapped(plain)["logits"])
    assert "aux_losses" not in wrapped(plain)
    wrapped.train()  # in training the ground-truth mask drives the attention
    flipped = dict(batch, knowledge_mask=1 - batch["knowledge_mask"])
    assert not torch.equal(wrapped(batch)["logits"], wrapped(flipped)["logits"])


def test_mask_head_learns_through_bce() -> None:
    _, wrapped = _wrapped()
    wrapped.train()
    out = wrapped(_batch())
    bce = out["aux_losses"]["mask_bce"]
    k_hat = out["mask_pred"].clamp(1e-6, 1 - 1e-6)
    k = _batch()["knowledge_mask"]
    expected = -(k * k_hat.log() + (1 - k) * (1 - k_hat).log()).mean()
    assert float(bce.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    bce.backward()
    grads = [p.grad for p in wrapped.mask_head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


class _Step:
    def __init__(self, model: torch.nn.Module, groups: dict) -> None:
        self.model, self.loss, self.epoch, self.global_step = model, None, 0, 0
        self.device = torch.device("cpu")
        self.optimizers = {k: torch.optim.Adam(v, lr=1e-3) for k, v in groups.items()}

    def autocast(self) -> nullcontext:
        return nullcontext()

    def backward(self, loss: torch.Tensor, optimizer: str = "main") -> None:
        loss.backward()

    def step(self, optimizer: str = "main") -> None:
        self.optimizers[optimizer].step()
        self.optimizers[optimizer].zero_grad()


def test_trainer_adds_mask_bce_and_trains_gamma() -> None:
    _, wrapped = _wrapped()
    trainer = AdversarialTrainer(
        AdversarialTrainerParams(
            discriminator=KnowledgeAwareDiscriminatorParams(ndf=8),
            nce=MaskedPatchNCEParams(num_patches=16, nc=8),
        ),
        CTX,
    )
    groups = trainer.optimizer_groups(wrapped)
    assert any(p is wrapped.gamma for p in groups["main"])
    step = _Step(wrapped, groups)
    batch = _batch()
    video = torch.rand(2, 3, 1, 32, 32).expand(-1, -1, 3, -1, -1) * 2 - 1
    out = trainer.train_step(step, {**batch, "video": video.contiguous()})
    assert "mask_bce" in out.terms and torch.isfinite(out.terms["mask_bce"])
    assert float(wrapped.gamma.detach()) != 0.0


def test_faithful_mode_refuses_the_reconstruction() -> None:
    _, wrapped = _wrapped()
    with pytest.raises(ComponentError, match="faithful"):
        AdversarialTrainer(AdversarialTrainerParams(mode="faithful"), CTX).optimizer_groups(wrapped)


def test_predicted_mask_schedule_uses_k_hat_once_ramped() -> None:
    torch.manual_seed(0)
    generator = FundusVideoGenerator(FundusVideoGeneratorParams(ngf=4, n_blocks=1), CTX)
    params = KnowledgeAttentionParams(head_channels=8, predicted_mask_schedule=True)
    wrapped = KnowledgeAttention(params, CTX).wrap(generator)
    with torch.no_grad():
        wrapped.gamma.fill_(0.7)
    batch = _batch()
    wrapped.eval()
    inference = wrapped({"image": batch["image"], "context": batch["context"]})["logits"]
    wrapped.train()
    ramped = wrapped({**batch, "videos_seen": 1000})  # probability 1: always the predicted mask
    assert torch.allclose(ramped["logits"], inference, atol=1e-6)
    assert "mask_bce" in ramped["aux_losses"]  # the head still learns from K
