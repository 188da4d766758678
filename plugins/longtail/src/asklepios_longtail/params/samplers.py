"""Params of the re-samplers.

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "BBNPairsSamplerParams",
    "EffectiveNumberSamplerParams",
    "FlexSamplerParams",
    "ProgressiveSamplerParams",
    "Rule",
    "SqrtSamplerParams",
    "SwitchSamplerParams",
]

Rule = Literal["shuffle", "class_balanced", "effective_number", "sqrt"]
"""A sampling rule of :class:`SwitchSamplerParams` and :class:`BBNPairsSamplerParams`."""


class EffectiveNumberSamplerParams(Params):
    """Params of :class:`~asklepios_longtail.samplers.EffectiveNumberSampler`."""

    beta: float = Field(0.9999, ge=0, lt=1, description="β of the effective number.")


class FlexSamplerParams(Params):
    """Params of :class:`~asklepios_longtail.samplers.FlexSampler`."""

    zero_accuracy: Literal["min_nonzero", "error"] = Field(
        "min_nonzero",
        description="A class with 0 validation accuracy: replace its accuracy by the smallest "
        "non-zero one (all zero: equal accuracies), or raise (MONICA crashes; spec §0.3 #9).",
    )
    initial: Literal["shuffle", "class_balanced"] = Field(
        "shuffle", description="Sampling before the first validation result arrives (epoch 0)."
    )
    accuracy_key: str = Field(
        "class_acc_{c}",
        description="Metric key of class c's validation accuracy; matched exactly or as the "
        "last path part of a longer key (e.g. 'val/shot_groups/class_acc_3').",
    )


class SqrtSamplerParams(Params):
    """Params of :class:`~asklepios_longtail.samplers.SqrtSampler`."""

    q: float = Field(0.5, ge=0, le=1, description="Class mass ∝ n_c^q (1: instance, 0: class).")


class ProgressiveSamplerParams(Params):
    """Params of :class:`~asklepios_longtail.samplers.ProgressiveSampler`."""

    epochs: int | None = Field(None, ge=1, description="E of the schedule; default: stage epochs.")


class SwitchSamplerParams(Params):
    """Params of :class:`~asklepios_longtail.samplers.SwitchSampler`."""

    before: Rule = Field("shuffle", description="Sampling before the switch epoch.")
    after: Rule = Field("effective_number", description="Sampling from the switch epoch on.")
    at_fraction: float = Field(0.8, ge=0, le=1, description="Switch at epoch int(fraction · E).")
    at: int | None = Field(None, ge=0, description="Absolute switch epoch; overrides the fraction.")
    beta: float = Field(0.9999, ge=0, lt=1, description="β of effective_number.")
    q: float = Field(0.5, ge=0, le=1, description="q of sqrt.")
    epochs: int | None = Field(None, ge=1, description="E of the schedule; default: stage epochs.")


class BBNPairsSamplerParams(Params):
    """Params of :class:`~asklepios_longtail.samplers.BBNPairsSampler`."""

    second: Rule = Field(
        "class_balanced", description="Rule of the second stream (MONICA: class_balanced)."
    )
