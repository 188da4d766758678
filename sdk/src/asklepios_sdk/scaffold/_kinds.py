"""One real, small example component per kind, with its test: what ``new-plugin`` writes.

Templates use :class:`string.Template` placeholders: ``${plugin}`` (the id), ``${package}``
(``asklepios_<id>``). Each example is a published method in a few lines, so a new plugin starts
from something that passes the conformance kit and shows the contracts, not from a stub.
"""

from __future__ import annotations

from dataclasses import dataclass

from asklepios_sdk.scaffold._templates_data import (
    AUGMENTATION,
    AUGMENTATION_TEST,
    DATASET,
    DATASET_TEST,
    EVALUATOR,
    EVALUATOR_TEST,
    SAMPLER,
    SAMPLER_TEST,
)
from asklepios_sdk.scaffold._templates_model import (
    ADAPTER,
    ADAPTER_TEST,
    BACKBONE,
    BACKBONE_TEST,
    LOSS,
    LOSS_TEST,
    TRAINER,
    TRAINER_TEST,
)

__all__ = ["KINDS", "KindTemplate"]


@dataclass(frozen=True)
class KindTemplate:
    """What one kind contributes to a generated plugin."""

    kind: str
    hook: str
    module: str
    cls: str
    name: str
    doc: str
    reference: str
    code: str
    test: str
    params: str | None = None
    dependencies: tuple[str, ...] = ()


KINDS: dict[str, KindTemplate] = {
    t.kind: t
    for t in (
        KindTemplate(
            "backbone",
            "register_backbones",
            "backbones",
            "SmallConvNet",
            "small_cnn",
            "Conv-BN-ReLU-pool blocks, global pooling, linear head",
            "LeCun et al. 1998",
            BACKBONE,
            BACKBONE_TEST,
            "SmallConvNetParams",
        ),
        KindTemplate(
            "loss",
            "register_losses",
            "losses",
            "SymmetricCrossEntropy",
            "sce",
            "alpha CE + beta reverse CE, for noisy labels",
            "Wang et al., ICCV 2019",
            LOSS,
            LOSS_TEST,
            "SymmetricCrossEntropyParams",
        ),
        KindTemplate(
            "augmentation",
            "register_augmentations",
            "augmentations",
            "GaussianNoise",
            "gaussian_noise",
            "Additive Gaussian noise with probability p",
            "-",
            AUGMENTATION,
            AUGMENTATION_TEST,
            "GaussianNoiseParams",
        ),
        KindTemplate(
            "adapter",
            "register_adapters",
            "adapters",
            "TemperatureScaling",
            "temperature",
            "Divide logits by a (learned) temperature",
            "Guo et al., ICML 2017",
            ADAPTER,
            ADAPTER_TEST,
            "TemperatureScalingParams",
        ),
        KindTemplate(
            "evaluator",
            "register_evaluators",
            "evaluators",
            "BrierScore",
            "brier",
            "Multi-class Brier score (lower is better)",
            "Brier 1950",
            EVALUATOR,
            EVALUATOR_TEST,
            None,
            ("torchmetrics>=1.2,<2",),
        ),
        KindTemplate(
            "sampler",
            "register_samplers",
            "samplers",
            "ClassBalancedSampler",
            "class_balanced",
            "Uniform over classes, then over samples",
            "-",
            SAMPLER,
            SAMPLER_TEST,
            None,
        ),
        KindTemplate(
            "dataset",
            "register_datasets",
            "datasets",
            "DigitsDataset",
            "digits",
            "scikit-learn's 8x8 digits, stratified train/val/test",
            "Alpaydin & Kaynak 1998",
            DATASET,
            DATASET_TEST,
            "DigitsParams",
            ("scikit-learn>=1.3",),
        ),
        KindTemplate(
            "trainer",
            "register_trainers",
            "trainers",
            "RDropTrainer",
            "rdrop",
            "Two dropout passes + alpha symmetric KL",
            "Liang et al., NeurIPS 2021",
            TRAINER,
            TRAINER_TEST,
            "RDropParams",
        ),
    )
}
"""Every kind ``new-plugin`` can generate, in hookspec order."""
