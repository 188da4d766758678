"""Params of the trainers (ERM, SAM, BBN, feature collection) and SSL pre-training.

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "BBNTrainerParams",
    "BYOLTrainerParams",
    "CollectTrainerParams",
    "ERMTrainerParams",
    "MoCoTrainerParams",
    "SAMTrainerParams",
    "TrainerModeParams",
]


class TrainerModeParams(Params):
    """Switches shared by the ERM, SAM and BBN trainers (MONICA's mode leak, a second view)."""

    eval_mode_after_epoch0: bool = Field(
        False,
        description="Train in eval mode from epoch 1 on (BatchNorm running statistics, no "
        "dropout), as MONICA's train/eval mode leak does (spec §0.3 #4).",
    )
    second_view_key: str = Field(
        "image_view2",
        description="Batch key of a second augmented view (longtail.two_view); when present its "
        "features are added to the outputs as 'features_view2' (ConMix).",
    )


class ERMTrainerParams(TrainerModeParams):
    """Params of :class:`~asklepios_longtail.trainers.ERMTrainer`."""


class SAMTrainerParams(TrainerModeParams):
    """Params of :class:`~asklepios_longtail.trainers.SAMTrainer`."""

    rhos: tuple[float, float, float] = Field(
        (0.05, 0.1, 0.5), description="ρ in the three phases of the schedule."
    )
    bounds: tuple[int, int] = Field(
        (5, 60), description="Last 1-based epochs of the first two phases (MONICA: 5, 60)."
    )


class BBNTrainerParams(TrainerModeParams):
    """Params of :class:`~asklepios_longtail.trainers.BBNTrainer`."""

    alpha_schedule: Literal["parabolic", "monica"] = Field(
        "parabolic",
        description="α(e): the BBN paper's 1 − (e/E)², or MONICA's formula, which never nears "
        "0 for E = 50 and is negative for E ≥ 100 (spec §0.3 #10).",
    )
    epochs: int | None = Field(None, ge=1, description="E of the schedule; default: stage epochs.")


class CollectTrainerParams(Params):
    """Params of :class:`~asklepios_longtail.trainers.CollectTrainer`."""


class BYOLTrainerParams(Params):
    """Params of :class:`~asklepios_longtail.ssl.BYOLTrainer`."""

    projection_size: int = Field(256, ge=1, description="Output width of the projector.")
    projection_hidden_size: int = Field(4096, ge=1, description="Hidden width of both MLPs.")
    use_momentum: bool = Field(
        False,
        description="Use an EMA target network (the BYOL paper); MONICA sets False, which makes "
        "the target the online network without gradient (SimSiam-style).",
    )
    moving_average_decay: float = Field(0.99, ge=0, le=1, description="EMA decay of the target.")
    second_view_key: str = Field(
        "image_view2", description="Batch key of the second view (from longtail.two_view)."
    )


class MoCoTrainerParams(Params):
    """Params of :class:`~asklepios_longtail.ssl.MoCoTrainer`."""

    projection: tuple[int, ...] = Field(
        (100, 50, 25), description="Widths of the projection MLP (MONICA: 2048→100→50→25)."
    )
    queue_size: int = Field(8192, ge=1, description="Number of negative keys K.")
    momentum: float = Field(0.999, ge=0, le=1, description="EMA momentum of the key encoder.")
    temperature: float = Field(0.05, gt=0, description="InfoNCE temperature.")
    second_view_key: str = Field(
        "image_view2", description="Batch key of the second view (from longtail.two_view)."
    )
