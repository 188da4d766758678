"""One real, small example component per kind, with its test: what ``new-plugin`` writes.

Templates use :class:`string.Template` placeholders: ``${plugin}`` (the id), ``${package}``
(``asklepios_<id>``). Each example is a published method in a few lines, so a new plugin starts
from something that passes the conformance kit and shows the contracts, not from a stub. The
README's one-line doc of each example is the first line of its class docstring, as the registry
reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

from asklepios_sdk.registration import REGISTRATION_HOOKS
from asklepios_sdk.scaffold._templates_data import (
    AUGMENTATION,
    AUGMENTATION_PARAMS,
    AUGMENTATION_TEST,
    DATASET,
    DATASET_PARAMS,
    DATASET_TEST,
    EVALUATOR,
    EVALUATOR_TEST,
    SAMPLER,
    SAMPLER_TEST,
)
from asklepios_sdk.scaffold._templates_model import (
    ADAPTER,
    ADAPTER_PARAMS,
    ADAPTER_TEST,
    BACKBONE,
    BACKBONE_PARAMS,
    BACKBONE_TEST,
    LOSS,
    LOSS_PARAMS,
    LOSS_TEST,
    TRAINER,
    TRAINER_PARAMS,
    TRAINER_TEST,
)

__all__ = ["KINDS", "KindTemplate"]


@dataclass(frozen=True)
class KindTemplate:
    """What one kind contributes to a generated plugin.

    Attributes:
        kind: the component kind (``loss``).
        module: the family module the class lives in (``losses``).
        cls: the component class; registered as ``"<package>.<module>:<cls>"``.
        name: the bare component name (the id is ``<plugin>.<name>``).
        reference: the paper or source, listed under the README's table.
        code: the family module's source.
        test: the source of ``tests/test_<module>.py``.
        params_code: the ``<cls>Params`` model for ``params.py``; empty when the component takes
            no params and registers ``EmptyParams``.
        dependencies: requirements beyond the common ones.
    """

    kind: str
    module: str
    cls: str
    name: str
    reference: str
    code: str
    test: str
    params_code: str = ""
    dependencies: tuple[str, ...] = ()

    @property
    def hook(self) -> str:
        """Return the registration hook of this kind (``register_losses``)."""
        return REGISTRATION_HOOKS[self.kind]

    @property
    def plural(self) -> str:
        """Return the kind in the plural, as in the hook name (``losses``)."""
        return self.hook.removeprefix("register_")

    @property
    def params(self) -> str | None:
        """Return the params model's name, or None when the component registers EmptyParams."""
        return f"{self.cls}Params" if self.params_code else None


KINDS: dict[str, KindTemplate] = {
    t.kind: t
    for t in (
        KindTemplate(
            kind="backbone",
            module="backbones",
            cls="SmallConvNet",
            name="small_cnn",
            reference="LeCun et al. 1998",
            code=BACKBONE,
            test=BACKBONE_TEST,
            params_code=BACKBONE_PARAMS,
        ),
        KindTemplate(
            kind="loss",
            module="losses",
            cls="SymmetricCrossEntropy",
            name="sce",
            reference="Wang et al., ICCV 2019",
            code=LOSS,
            test=LOSS_TEST,
            params_code=LOSS_PARAMS,
        ),
        KindTemplate(
            kind="augmentation",
            module="augmentations",
            cls="GaussianNoise",
            name="gaussian_noise",
            reference="-",
            code=AUGMENTATION,
            test=AUGMENTATION_TEST,
            params_code=AUGMENTATION_PARAMS,
        ),
        KindTemplate(
            kind="adapter",
            module="adapters",
            cls="TemperatureScaling",
            name="temperature",
            reference="Guo et al., ICML 2017",
            code=ADAPTER,
            test=ADAPTER_TEST,
            params_code=ADAPTER_PARAMS,
        ),
        KindTemplate(
            kind="evaluator",
            module="evaluators",
            cls="BrierScore",
            name="brier",
            reference="Brier 1950",
            code=EVALUATOR,
            test=EVALUATOR_TEST,
            dependencies=("torchmetrics>=1.2,<2",),
        ),
        KindTemplate(
            kind="sampler",
            module="samplers",
            cls="ClassBalancedSampler",
            name="class_balanced",
            reference="-",
            code=SAMPLER,
            test=SAMPLER_TEST,
        ),
        KindTemplate(
            kind="dataset",
            module="datasets",
            cls="DigitsDataset",
            name="digits",
            reference="Alpaydin & Kaynak 1998",
            code=DATASET,
            test=DATASET_TEST,
            params_code=DATASET_PARAMS,
            dependencies=("scikit-learn>=1.3",),
        ),
        KindTemplate(
            kind="trainer",
            module="trainers",
            cls="RDropTrainer",
            name="rdrop",
            reference="Liang et al., NeurIPS 2021",
            code=TRAINER,
            test=TRAINER_TEST,
            params_code=TRAINER_PARAMS,
        ),
    )
}
"""Every kind ``new-plugin`` can generate, in hookspec order."""
