"""The ε-MSE training step: what trains in each mode, caption dropout, the loss itself."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError
from asklepios_synfer.au_adapter import AUAdapter
from asklepios_synfer.ldm import LatentDiffusion
from asklepios_synfer.params import AUAdapterParams, DiffusionTrainerParams, LatentDiffusionParams
from asklepios_synfer.trainer import DiffusionTrainer


class _Step:
    """A minimal StepContext: SGD on the trainer's groups."""

    def __init__(self, model, groups) -> None:
        self.model = model
        self.optimizer = torch.optim.SGD(groups["main"], lr=0.5)

    def autocast(self):
        return nullcontext()

    def backward(self, loss, optimizer="main") -> None:
        loss.backward()

    def step(self, optimizer="main") -> None:
        self.optimizer.step()
        self.optimizer.zero_grad()


def _model(lora: bool = True):
    torch.manual_seed(0)
    ctx = BuildContext()
    ldm = LatentDiffusion(LatentDiffusionParams(lora_rank=2 if lora else None), ctx)
    return AUAdapter(AUAdapterParams(), ctx).wrap(ldm)


def _train(mode: str, model=None):
    model = model or _model()
    trainer = DiffusionTrainer(DiffusionTrainerParams(train=mode), BuildContext())
    groups = trainer.optimizer_groups(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = model.ldm.example_batch(BuildContext(), 3)
    result = trainer.train_step(_Step(model, groups), batch)
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    return result, changed, groups


def test_adapter_training_changes_only_the_projector_and_the_kv_pairs() -> None:
    result, changed, _ = _train("adapter")
    assert torch.isfinite(result.total) and "eps_mse" in result.terms
    assert changed and all(n.startswith(("image_proj.", "ip_adapter.")) for n in changed)


def test_lora_training_changes_only_lora_layers() -> None:
    _, changed, _ = _train("lora")
    assert changed and all("lora_" in n for n in changed)


def test_lora_training_without_lora_layers_says_how_to_add_them() -> None:
    with pytest.raises(ComponentError, match="set lora_rank"):
        _train("lora", _model(lora=False))


def test_captions_drop_at_their_probability_and_the_loss_is_the_eps_mse() -> None:
    trainer = DiffusionTrainer(DiffusionTrainerParams(text_dropout=1.0), BuildContext())
    batch = {"text": ["a", "b"], "meta": {"au": torch.ones(2, 41)}}
    assert trainer._drop(batch)["text"] == ["", ""]
    keep = DiffusionTrainer(
        DiffusionTrainerParams(text_dropout=0.0, au_dropout=1.0), BuildContext()
    )
    dropped = keep._drop(batch)
    assert dropped["text"] == ["a", "b"] and dropped["meta"]["au"].sum() == 0
    torch.manual_seed(1)
    many = DiffusionTrainer(DiffusionTrainerParams(), BuildContext())
    texts = many._drop({"text": ["x"] * 4000})["text"]
    assert 0.03 < texts.count("") / 4000 < 0.07  # 5 %
    model = _model()
    batch = model.ldm.example_batch(BuildContext(), 2)
    batch.update(timesteps=torch.tensor([3, 700]), noise=torch.randn(2, 4, 8, 8))
    out = model(batch)
    manual = ((out["logits"] - batch["noise"]) ** 2).mean()
    assert torch.allclose(torch.nn.functional.mse_loss(out["logits"], out["eps_target"]), manual)
