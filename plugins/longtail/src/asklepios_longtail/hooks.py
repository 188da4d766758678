"""Registration hooks of the longtail plugin: one ``register`` call per component.

Importing this module defines functions and nothing else. Each hook imports the params models
(pydantic and the SDK only) and names its classes lazily, ``"module:Class"``: torch and the
component modules are imported only when a component is built.
"""

from __future__ import annotations

from asklepios_sdk import Register, hookimpl

__all__ = [
    "register_adapters",
    "register_augmentations",
    "register_backbones",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "register_samplers",
    "register_trainers",
]


@hookimpl
def register_losses(register: Register) -> None:
    """Register the long-tailed losses (re-weighting, logit adjustment, experts, metric)."""
    from asklepios_longtail import params as p

    register(
        "weighted_ce",
        "asklepios_longtail.losses.reweighting:WeightedCELoss",
        p.WeightedCELossParams,
    )
    register("focal", "asklepios_longtail.losses.reweighting:FocalLoss", p.FocalLossParams)
    register("cb_loss", "asklepios_longtail.losses.reweighting:CBLoss", p.CBLossParams)
    register("ldam", "asklepios_longtail.losses.reweighting:LDAMLoss", p.LDAMLossParams)
    register(
        "balanced_softmax",
        "asklepios_longtail.losses.adjustment:BalancedSoftmaxLoss",
        p.BalancedSoftmaxLossParams,
    )
    register(
        "logit_adjusted",
        "asklepios_longtail.losses.adjustment:LogitAdjustedLoss",
        p.LogitAdjustedLossParams,
    )
    register("lade", "asklepios_longtail.losses.adjustment:LADELoss", p.LADELossParams)
    register("vs", "asklepios_longtail.losses.adjustment:VSLoss", p.VSLossParams)
    register("seql", "asklepios_longtail.losses.adjustment:SEQLLoss", p.SEQLLossParams)
    register("gcl", "asklepios_longtail.losses.adjustment:GCLLoss", p.GCLLossParams)
    register(
        "label_aware_smoothing",
        "asklepios_longtail.losses.reweighting:LabelAwareSmoothingLoss",
        p.LabelAwareSmoothingLossParams,
    )
    register("sade", "asklepios_longtail.losses.experts:SADELoss", p.SADELossParams)
    register("ride", "asklepios_longtail.losses.experts:RIDELoss", p.RIDELossParams)
    register("center", "asklepios_longtail.losses.representation:CenterLoss", p.CenterLossParams)
    register("range", "asklepios_longtail.losses.representation:RangeLoss", p.RangeLossParams)
    register("conmix", "asklepios_longtail.losses.representation:ConMixLoss", p.ConMixLossParams)
    register("seesaw", "asklepios_longtail.losses.adjustment:SeesawLoss", p.SeesawLossParams)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register the re-samplers (class-balanced, effective-number, FlexRS, switch, sqrt, ...)."""
    from asklepios_sdk import EmptyParams

    from asklepios_longtail import params as p

    register("class_balanced", "asklepios_longtail.samplers:ClassBalancedSampler", EmptyParams)
    register(
        "effective_number",
        "asklepios_longtail.samplers:EffectiveNumberSampler",
        p.EffectiveNumberSamplerParams,
    )
    register("flex", "asklepios_longtail.samplers:FlexSampler", p.FlexSamplerParams)
    register("switch", "asklepios_longtail.samplers:SwitchSampler", p.SwitchSamplerParams)
    register("sqrt", "asklepios_longtail.samplers:SqrtSampler", p.SqrtSamplerParams)
    register(
        "progressive", "asklepios_longtail.samplers:ProgressiveSampler", p.ProgressiveSamplerParams
    )
    register("bbn_pairs", "asklepios_longtail.samplers:BBNPairsSampler", p.BBNPairsSamplerParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the shot-group evaluator (many/medium/few, MONICA's group average, AUROC...)."""
    from asklepios_longtail import params as p

    register(
        "shot_groups", "asklepios_longtail.metrics:ShotGroupsEvaluator", p.ShotGroupsEvaluatorParams
    )


@hookimpl
def register_adapters(register: Register) -> None:
    """Register the heads (cosine, causal-norm, DisAlign, LWS, BBN, cRT) and post-hoc adapters."""
    from asklepios_longtail import params as p

    register("cosine_head", "asklepios_longtail.adapters:CosineHead", p.CosineHeadParams)
    register(
        "causal_norm_head", "asklepios_longtail.adapters:CausalNormHead", p.CausalNormHeadParams
    )
    register("disalign_head", "asklepios_longtail.adapters:DisAlignHead", p.DisAlignHeadParams)
    register("lws_head", "asklepios_longtail.adapters:LWSHead", p.LWSHeadParams)
    register("bbn_head", "asklepios_longtail.adapters:BBNHead", p.BBNHeadParams)
    register("crt", "asklepios_longtail.adapters:CRTHead", p.CRTHeadParams)
    register("posthoc_la", "asklepios_longtail.posthoc:PosthocLA", p.PosthocLAParams)
    register("tau_norm", "asklepios_longtail.posthoc:TauNorm", p.TauNormParams)
    register("ncm", "asklepios_longtail.posthoc:NCMClassifier", p.NCMClassifierParams)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the mixing augmentations (mixup, cutmix, remix) and MONICA's presets."""
    from asklepios_longtail import params as p

    register("mixup", "asklepios_longtail.augmentations:MixUp", p.MixUpParams)
    register("cutmix", "asklepios_longtail.augmentations:CutMix", p.CutMixParams)
    register("remix", "asklepios_longtail.augmentations:ReMix", p.ReMixParams)
    register("transforms", "asklepios_longtail.transforms:Preset", p.PresetParams)
    register("two_view", "asklepios_longtail.transforms:TwoView", p.TwoViewParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register the trainers (ERM with MONICA switches, SAM, BBN, NCM collection, BYOL)."""
    from asklepios_longtail import params as p

    register("erm", "asklepios_longtail.trainers:ERMTrainer", p.ERMTrainerParams)
    register("sam", "asklepios_longtail.trainers:SAMTrainer", p.SAMTrainerParams)
    register("bbn", "asklepios_longtail.trainers:BBNTrainer", p.BBNTrainerParams)
    register("collect", "asklepios_longtail.trainers:CollectTrainer", p.CollectTrainerParams)
    register("byol", "asklepios_longtail.ssl:BYOLTrainer", p.BYOLTrainerParams)
    register("mocov2", "asklepios_longtail.ssl:MoCoTrainer", p.MoCoTrainerParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the long-tailed datasets (digits benchmark, MONICA split lists)."""
    from asklepios_longtail import params as p

    register("digits_lt", "asklepios_longtail.datasets:DigitsLT", p.DigitsLTParams)
    register("split_list", "asklepios_longtail.datasets:SplitList", p.SplitListParams)
    register("long_tailed", "asklepios_longtail.datasets:LongTailed", p.LongTailedParams)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register SADE's multi-expert ResNet (also the backbone of RIDE) and RSG's ResNeXt."""
    from asklepios_longtail import params as p

    register("sade_resnet", "asklepios_longtail.backbones:ExpertResNet", p.ExpertResNetParams)
    register("rsg_resnext", "asklepios_longtail.rsg:RSGResNeXt", p.RSGResNeXtParams)
