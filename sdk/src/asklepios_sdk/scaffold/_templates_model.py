"""Source templates of the model-side examples: backbone, loss, adapter, trainer.

Each kind has its family module (``BACKBONE``: the class, which imports torch), the params model
that goes into the plugin's light ``params.py`` (``BACKBONE_PARAMS``: pydantic and the SDK only)
and a test.
"""

__all__ = [
    "ADAPTER",
    "ADAPTER_PARAMS",
    "ADAPTER_TEST",
    "BACKBONE",
    "BACKBONE_PARAMS",
    "BACKBONE_TEST",
    "LOSS",
    "LOSS_PARAMS",
    "LOSS_TEST",
    "TRAINER",
    "TRAINER_PARAMS",
    "TRAINER_TEST",
]

BACKBONE = '''"""Backbones of the ${plugin} plugin."""

from __future__ import annotations

from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError
from torch import Tensor, nn

from ${package}.params import SmallConvNetParams


class SmallConvNet(Backbone):
    """Classify images with conv-BN-ReLU-pool blocks, average pooling and a linear head.

    References: LeCun et al., Gradient-based learning applied to document recognition, 1998.
    """

    def __init__(self, params: SmallConvNetParams, ctx: BuildContext) -> None:
        super().__init__()
        if ctx.data.num_classes is None:
            raise ComponentError(
                "${plugin}.small_cnn classifies, but DataFacts.num_classes "
                "is None: use a dataset that states its classes (a classification task)"
            )
        blocks: list[nn.Module] = []
        channels = ctx.data.in_channels or 3
        for width in params.widths:
            blocks += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, ceil_mode=True),
            ]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(params.dropout)
        self.feature_dim = channels
        self.classifier = nn.Linear(channels, ctx.data.num_classes)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        features = self.blocks(batch["image"]).mean(dim=(2, 3))
        return {"logits": self.classifier(self.dropout(features)), "features": features}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        self.classifier = nn.Linear(self.feature_dim, num_classes)
'''

BACKBONE_PARAMS = '''

class SmallConvNetParams(Params):
    """Params of ``SmallConvNet`` (``backbones.py``)."""

    widths: list[int] = Field(
        default_factory=lambda: [16, 32],
        min_length=1,
        description="Channels of each conv block; each block halves the resolution.",
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the classifier.")
'''

BACKBONE_TEST = '''"""SmallConvNet: output contract, feature width, classifier reset."""

from __future__ import annotations

import torch
from asklepios_sdk import BuildContext, DataFacts

from ${package}.backbones import SmallConvNet
from ${package}.params import SmallConvNetParams


def test_outputs_follow_the_contract() -> None:
    ctx = BuildContext(data=DataFacts(num_classes=5, in_channels=1, image_size=(8, 8)))
    model = SmallConvNet(SmallConvNetParams(widths=[4, 6]), ctx).eval()
    out = model({"image": torch.randn(3, 1, 8, 8)})
    assert out["logits"].shape == (3, 5)
    assert out["features"].shape == (3, model.feature_dim) == (3, 6)
    model.reset_classifier(2)
    assert model({"image": torch.randn(3, 1, 8, 8)})["logits"].shape == (3, 2)
'''

LOSS = '''"""Losses of the ${plugin} plugin."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from asklepios_sdk import Batch, BuildContext, Loss, LossOutput
from torch import Tensor

from ${package}.params import SymmetricCrossEntropyParams


class SymmetricCrossEntropy(Loss):
    """Combine cross-entropy and reverse cross-entropy for learning with noisy labels.

    ``L = alpha * CE + beta * RCE`` with ``RCE = -sum_k p_k log q_k`` against the one-hot label
    ``q`` and ``log 0 := A``, which gives ``RCE = -A * (1 - p_y)``.

    References: Wang et al., Symmetric Cross Entropy for Robust Learning with Noisy Labels,
    ICCV 2019.
    """

    def __init__(self, params: SymmetricCrossEntropyParams, ctx: BuildContext) -> None:
        super().__init__()
        self.alpha = params.alpha
        self.beta = params.beta
        self.log_zero = params.log_zero

    def forward(self, outputs: Mapping[str, Tensor], batch: Batch) -> LossOutput:
        logits, label = outputs["logits"].float(), batch["label"]
        log_p = torch.log_softmax(logits, dim=-1)
        log_p_y = log_p.gather(1, label[:, None])[:, 0]
        ce = -log_p_y.mean()
        rce = (-self.log_zero * (1 - log_p_y.exp())).mean()
        return LossOutput(self.alpha * ce + self.beta * rce, {"ce": ce, "rce": rce})
'''

LOSS_PARAMS = '''

class SymmetricCrossEntropyParams(Params):
    """Params of ``SymmetricCrossEntropy`` (defaults: the paper's CIFAR-10 setting)."""

    alpha: float = Field(0.1, ge=0, description="Weight of the cross-entropy term.")
    beta: float = Field(1.0, ge=0, description="Weight of the reverse cross-entropy term.")
    log_zero: float = Field(-4.0, lt=0, description="A: the value taken for log 0 in RCE.")
'''

LOSS_TEST = '''"""SymmetricCrossEntropy against a numpy transcription of the paper's formula."""

from __future__ import annotations

import numpy as np
import torch
from asklepios_sdk import BuildContext

from ${package}.losses import SymmetricCrossEntropy
from ${package}.params import SymmetricCrossEntropyParams


def _reference(logits: np.ndarray, label: np.ndarray, alpha: float, beta: float) -> float:
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.eye(logits.shape[1])[label]
    log_q = np.where(q > 0, 0.0, -4.0)  # log 1 = 0, log 0 := A = -4
    ce = -np.log(p[np.arange(len(label)), label]).mean()
    rce = -(p * log_q).sum(1).mean()
    return alpha * ce + beta * rce


def test_matches_the_formula() -> None:
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3], [-3.0, 4.0, 0.0]])
    label = np.array([0, 2, 1])
    loss = SymmetricCrossEntropy(SymmetricCrossEntropyParams(alpha=0.3, beta=0.7), BuildContext())
    out = loss({"logits": torch.tensor(logits)}, {"label": torch.tensor(label)})
    assert torch.isclose(out.total, torch.tensor(_reference(logits, label, 0.3, 0.7)).float())
    assert set(out.terms) == {"ce", "rce"}
'''

ADAPTER = '''"""Adapters of the ${plugin} plugin."""

from __future__ import annotations

import math

import torch
from asklepios_sdk import Adapter, Batch, BuildContext
from torch import Tensor, nn

from ${package}.params import TemperatureScalingParams


class TemperatureScaling(Adapter):
    """Divide the wrapped model's logits by a temperature ``T > 0`` (learned as ``log T``).

    References: Guo et al., On Calibration of Modern Neural Networks, ICML 2017.
    """

    def __init__(self, params: TemperatureScalingParams, ctx: BuildContext) -> None:
        super().__init__()
        log_t = torch.tensor(math.log(params.temperature))
        self.log_temperature = nn.Parameter(log_t, requires_grad=params.learnable)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        out["logits"] = out["logits"] / self.log_temperature.exp()
        return out
'''

ADAPTER_PARAMS = '''

class TemperatureScalingParams(Params):
    """Params of ``TemperatureScaling`` (``adapters.py``)."""

    temperature: float = Field(1.5, gt=0, description="Initial temperature T.")
    learnable: bool = Field(True, description="Learn T (it is fixed otherwise).")
'''

ADAPTER_TEST = '''"""TemperatureScaling divides the inner logits by T."""

from __future__ import annotations

import torch
from asklepios_sdk import BuildContext
from torch import Tensor, nn

from ${package}.adapters import TemperatureScaling
from ${package}.params import TemperatureScalingParams


class _Fixed(nn.Module):
    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"logits": batch["image"], "features": batch["image"]}


def test_logits_are_divided_by_the_temperature() -> None:
    adapter = TemperatureScaling(TemperatureScalingParams(temperature=2.0), BuildContext())
    model = adapter.wrap(_Fixed())
    image = torch.tensor([[2.0, -4.0]])
    out = model({"image": image})
    assert torch.allclose(out["logits"], image / 2.0)
    assert torch.equal(out["features"], image)
'''

TRAINER = '''"""Trainers of the ${plugin} plugin."""

from __future__ import annotations

import torch
from asklepios_sdk import Batch, BuildContext, LossOutput, StepContext, Trainer
from torch import Tensor

from ${package}.params import RDropTrainerParams


def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Return ``(KL(p_a || p_b) + KL(p_b || p_a)) / 2``, summed over classes, batch-averaged."""
    log_a = torch.log_softmax(logits_a.float(), dim=-1)
    log_b = torch.log_softmax(logits_b.float(), dim=-1)
    kl_ab = (log_a.exp() * (log_a - log_b)).sum(-1)
    kl_ba = (log_b.exp() * (log_b - log_a)).sum(-1)
    return ((kl_ab + kl_ba) / 2).mean()


class RDropTrainer(Trainer):
    """Average the losses of two dropout passes and add alpha times their symmetric KL.

    References: Liang et al., R-Drop: Regularized Dropout for Neural Networks, NeurIPS 2021.
    The paper tunes alpha per task; 1.0 is this plugin's default.
    """

    def __init__(self, params: RDropTrainerParams, ctx: BuildContext) -> None:
        self.alpha = params.alpha

    def train_step(self, step: StepContext, batch: Batch) -> LossOutput:
        with step.autocast():
            first, second = step.model(batch), step.model(batch)
            loss_a, loss_b = step.loss(first, batch), step.loss(second, batch)
            kl = symmetric_kl(first["logits"], second["logits"])
            total = (loss_a.total + loss_b.total) / 2 + self.alpha * kl
        step.backward(total)
        step.step()
        terms = {k: (v + loss_b.terms[k]) / 2 for k, v in loss_a.terms.items() if k in loss_b.terms}
        return LossOutput(total.detach(), {**terms, "rdrop_kl": kl.detach()})
'''

TRAINER_PARAMS = '''

class RDropTrainerParams(Params):
    """Params of ``RDropTrainer`` (``trainers.py``)."""

    alpha: float = Field(1.0, ge=0, description="Weight of the symmetric KL between the passes.")
'''

TRAINER_TEST = '''"""R-Drop's symmetric KL: zero for equal passes, the closed form otherwise."""

from __future__ import annotations

import math

import torch

from ${package}.trainers import symmetric_kl


def test_symmetric_kl() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    assert float(symmetric_kl(logits, logits)) == 0.0
    a, b = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    pa, pb = [0.5, 0.5], [0.75, 0.25]
    kl_ab = sum(x * math.log(x / y) for x, y in zip(pa, pb, strict=True))
    kl_ba = sum(y * math.log(y / x) for x, y in zip(pa, pb, strict=True))
    assert math.isclose(float(symmetric_kl(a, b)), (kl_ab + kl_ba) / 2, rel_tol=1e-6)
'''
