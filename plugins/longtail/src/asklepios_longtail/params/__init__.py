"""Params models of every longtail component, one module per family (pydantic and the SDK only).

The registration hooks import this package; importing it imports neither torch nor numpy nor any
component module. Each model is named after its class: ``FocalLoss`` -> ``FocalLossParams``.
"""

from __future__ import annotations

from asklepios_longtail.params.adapters import (
    BBNHeadParams,
    CausalNormHeadParams,
    CosineHeadParams,
    CRTHeadParams,
    DisAlignHeadParams,
    LWSHeadParams,
    NCMClassifierParams,
    PosthocLAParams,
    TauNormParams,
)
from asklepios_longtail.params.augmentations import (
    CutMixParams,
    MixUpParams,
    PresetParams,
    ReMixParams,
    TwoViewParams,
)
from asklepios_longtail.params.backbones import ExpertResNetParams, RSGResNeXtParams
from asklepios_longtail.params.datasets import DigitsLTParams, LongTailedParams, SplitListParams
from asklepios_longtail.params.losses import (
    BalancedSoftmaxLossParams,
    CBLossParams,
    CenterLossParams,
    ConMixLossParams,
    FocalLossParams,
    GCLLossParams,
    LabelAwareSmoothingLossParams,
    LADELossParams,
    LDAMLossParams,
    LogitAdjustedLossParams,
    RangeLossParams,
    RIDELossParams,
    SADELossParams,
    SeesawLossParams,
    SEQLLossParams,
    VSLossParams,
    WeightedCELossParams,
)
from asklepios_longtail.params.metrics import ShotGroupsEvaluatorParams
from asklepios_longtail.params.samplers import (
    BBNPairsSamplerParams,
    EffectiveNumberSamplerParams,
    FlexSamplerParams,
    ProgressiveSamplerParams,
    SqrtSamplerParams,
    SwitchSamplerParams,
)
from asklepios_longtail.params.trainers import (
    BBNTrainerParams,
    BYOLTrainerParams,
    CollectTrainerParams,
    ERMTrainerParams,
    MoCoTrainerParams,
    SAMTrainerParams,
    TrainerModeParams,
)

__all__ = [
    "BBNHeadParams",
    "BBNPairsSamplerParams",
    "BBNTrainerParams",
    "BYOLTrainerParams",
    "BalancedSoftmaxLossParams",
    "CBLossParams",
    "CRTHeadParams",
    "CausalNormHeadParams",
    "CenterLossParams",
    "CollectTrainerParams",
    "ConMixLossParams",
    "CosineHeadParams",
    "CutMixParams",
    "DigitsLTParams",
    "DisAlignHeadParams",
    "ERMTrainerParams",
    "EffectiveNumberSamplerParams",
    "ExpertResNetParams",
    "FlexSamplerParams",
    "FocalLossParams",
    "GCLLossParams",
    "LADELossParams",
    "LDAMLossParams",
    "LWSHeadParams",
    "LabelAwareSmoothingLossParams",
    "LogitAdjustedLossParams",
    "LongTailedParams",
    "MixUpParams",
    "MoCoTrainerParams",
    "NCMClassifierParams",
    "PosthocLAParams",
    "PresetParams",
    "ProgressiveSamplerParams",
    "RIDELossParams",
    "RSGResNeXtParams",
    "RangeLossParams",
    "ReMixParams",
    "SADELossParams",
    "SAMTrainerParams",
    "SEQLLossParams",
    "SeesawLossParams",
    "ShotGroupsEvaluatorParams",
    "SplitListParams",
    "SqrtSamplerParams",
    "SwitchSamplerParams",
    "TauNormParams",
    "TrainerModeParams",
    "TwoViewParams",
    "VSLossParams",
    "WeightedCELossParams",
]
