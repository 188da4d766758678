"""Spec §5.3: the guidance direction (descent lowers the CE) and the per-token step norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext
from asklepios_synfer.guidance import SemanticGuidance
from asklepios_synfer.params import SemanticGuidanceParams

W = torch.tensor([[1.0, -0.5, 0.2, 0.0], [0.3, 0.8, -1.0, 0.5], [-0.7, 0.1, 0.4, 1.2]])


def _ce(c_text: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(c_text.mean(dim=1) @ W.T, target)


def _step(sign: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    guidance = SemanticGuidance(SemanticGuidanceParams(lambda_g=0.1, sign=sign), BuildContext())
    torch.manual_seed(0)
    c = torch.randn(2, 6, 4)
    target = torch.tensor([2, 0])
    leaf = c.clone().requires_grad_(True)
    logits = leaf.mean(dim=1) @ W.T  # the toy classifier: logits = W · mean(c_text)
    result = guidance({"logits": logits}, {"label": target})
    (grad,) = torch.autograd.grad(result.total, leaf)
    return c, guidance.update(c, grad), target


def test_descent_lowers_the_ce_and_ascent_raises_it() -> None:
    c, down, target = _step(-1)
    _, up, _ = _step(+1)
    assert _ce(down, target) < _ce(c, target) < _ce(up, target)


def test_every_token_with_a_gradient_moves_by_lambda() -> None:
    c, new, _ = _step(-1)
    assert torch.allclose((new - c).norm(dim=-1), torch.full((2, 6), 0.1), atol=1e-6)


def test_the_loss_is_the_summed_cross_entropy_with_a_mean_term() -> None:
    guidance = SemanticGuidance(SemanticGuidanceParams(), BuildContext())
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    label = torch.tensor([0, 0])
    out = guidance({"logits": logits}, {"label": label})
    manual = -(torch.log_softmax(logits, 1)[0, 0] + torch.log_softmax(logits, 1)[1, 0])
    assert torch.allclose(out.total, manual)
    assert torch.allclose(out.terms["guidance_ce"], manual / 2)
