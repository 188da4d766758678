"""Params of the classifier adapters and the evaluation-time (post-hoc) adapters.

Imported by the registration hooks: pydantic and the SDK only, never torch.
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field

__all__ = [
    "BBNHeadParams",
    "CRTHeadParams",
    "CausalNormHeadParams",
    "CosineHeadParams",
    "DisAlignHeadParams",
    "LWSHeadParams",
    "NCMClassifierParams",
    "PosthocLAParams",
    "TauNormParams",
]


class CosineHeadParams(Params):
    """Params of :class:`~asklepios_longtail.adapters.CosineHead`."""

    scale: float = Field(1.0, gt=0, description="Multiplier of the cosines (GCL, LDAM: 1).")
    num_classes: int | None = Field(None, ge=1, description="C; default: the dataset's.")


class CausalNormHeadParams(Params):
    """Params of :class:`~asklepios_longtail.adapters.CausalNormHead`."""

    num_head: int = Field(2, ge=1, description="K: features and weights split into K chunks.")
    tau: float = Field(16.0, description="τ: logits scaled by τ/K.")
    alpha: float = Field(1.5, description="α of the counterfactual subtraction at evaluation.")
    gamma: float = Field(1 / 32, ge=0, description="γ in w/(‖w‖ + γ).")
    mu: float = Field(0.9, description="Decay μ of the running feature sum.")
    use_effect: bool = Field(True, description="Remove the head direction at evaluation (TDE).")
    num_classes: int | None = Field(None, ge=1, description="C; default: the dataset's.")


class DisAlignHeadParams(Params):
    """Params of :class:`~asklepios_longtail.adapters.DisAlignHead`."""

    mode: Literal["monica", "original"] = Field(
        "monica",
        description="monica: a new trainable linear layer (MONICA HEAD); original: the frozen "
        "stage-1 classifier, learning only α, β and the confidence layer.",
    )
    confidence_init: float = Field(0.1, description="Constant initial weight v of the confidence.")
    freeze_encoder: bool = Field(True, description="Freeze the wrapped model (stage 2).")
    classifier_path: str | None = Field(None, description="Attribute path of the stage-1 head.")
    num_classes: int | None = Field(None, ge=1, description="C; default: the dataset's.")


class LWSHeadParams(Params):
    """Params of :class:`~asklepios_longtail.adapters.LWSHead`."""

    trainable: Literal["scales", "all"] = Field(
        "scales", description="scales: LWS (only s trains); all: MiSLAS (w, b and s train)."
    )
    drop_stage1_bias: bool = Field(
        False,
        description="Use a fresh, frozen bias instead of the stage-1 bias, as MONICA does "
        "(spec §0.3 #6). Default: the stage-1 bias.",
    )
    freeze_encoder: bool = Field(True, description="Freeze the wrapped model except the head.")
    classifier_path: str | None = Field(None, description="Attribute path of the stage-1 head.")
    num_classes: int | None = Field(None, ge=1, description="C; default: the dataset's.")


class BBNHeadParams(Params):
    """Params of :class:`~asklepios_longtail.adapters.BBNHead`."""

    num_classes: int | None = Field(None, ge=1, description="C; default: the dataset's.")


class CRTHeadParams(Params):
    """Params of :class:`~asklepios_longtail.adapters.CRTHead`."""

    head: Literal["linear", "cosine"] = Field(
        "linear", description="Fresh head: linear (cRT) or cosine (GCL stage 2)."
    )
    cosine_scale: float = Field(1.0, gt=0, description="Scale of a cosine head.")
    finetune_all: bool = Field(
        False,
        description="Keep the encoder trainable (MONICA 2025 code: full fine-tuning with a new "
        "head; spec §0.3 #3). Default: frozen encoder (true decoupling).",
    )
    reuse_stage1_head: bool = Field(
        False,
        description="Keep the stage-1 classifier instead of a fresh head (results-era MONICA; "
        "use with finetune_all).",
    )
    num_classes: int | None = Field(None, ge=1, description="C; default: the dataset's.")


class PosthocLAParams(Params):
    """Params of :class:`~asklepios_longtail.posthoc.PosthocLA`."""

    tau: float = Field(1.0, description="τ of the adjustment.")
    eps: float = Field(1e-12, gt=0, description="Added inside the log of (n_c/n_max)^τ.")


class TauNormParams(Params):
    """Params of :class:`~asklepios_longtail.posthoc.TauNorm`."""

    tau: float = Field(
        2.0, description="τ of w_c/‖w_c‖^τ (MONICA hard-codes 2; Kang et al. tune τ in [0, 1])."
    )
    keep_bias: bool = Field(False, description="Add the classifier bias (MONICA drops it).")
    classifier_path: str | None = Field(None, description="Attribute path of the linear head.")


class NCMClassifierParams(Params):
    """Params of :class:`~asklepios_longtail.posthoc.NCMClassifier`."""

    feat_type: Literal["cl2n", "l2n", "un"] = Field(
        "cl2n",
        description="Feature normalisation: cl2n (centre by the training mean, then L2; MONICA), "
        "l2n (L2 only) or un (none).",
    )
    dist: Literal["l2", "cosine", "cos"] = Field(
        "l2",
        description="Logits: −‖f − c_k‖² (l2; MONICA's default), cos(f, c_k) (cosine), or "
        "f·c_k / d (cos: MONICA's 'cos', the dot product over the feature width d).",
    )
    num_classes: int | None = Field(None, ge=1, description="C; default: the dataset's.")
    freeze_encoder: bool = Field(True, description="Freeze the wrapped model (no training).")
