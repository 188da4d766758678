"""Params models of every ``unisurv`` component, named ``<Class>Params``.

Importing this module costs pydantic and the SDK only: the registration hooks import it to register
the components without importing torch, pandas or scikit-survival. Two shared bases are not
components themselves: :class:`SplitParams` (time bins and splits of the survival tables) and
:class:`TimeTokenTransformerParams` (the time-token Transformer of the backbone and the head).
"""

from __future__ import annotations

from typing import Literal

from asklepios_sdk import Params
from pydantic import Field, model_validator

__all__ = [
    "CSVDatasetParams",
    "ChunkCNNAdapterParams",
    "EventBalancedSamplerParams",
    "KMMarginWrapperParams",
    "MMVLossParams",
    "PDFHeadAdapterParams",
    "SksurvDatasetParams",
    "SplitParams",
    "StaticTokenizerAdapterParams",
    "SurvivalEvaluatorParams",
    "SyntheticDatasetParams",
    "TimeTokenTransformerParams",
    "UniSurvBackboneParams",
]


# --- loss ---------------------------------------------------------------------------------------


class MMVLossParams(Params):
    """Weights of the four terms of the Margin-Mean-Variance loss (UniSurv ``options.py``)."""

    alpha_s: float = Field(1.0, ge=0, description="Weight of the cross-entropy at the margin.")
    alpha_m: float = Field(0.01, ge=0, description="Weight of the margin-weighted mean term.")
    alpha_v: float = Field(1.0, ge=0, description="Weight of the variance term.")
    alpha_d: float = Field(
        1.0,
        ge=0,
        description=(
            "Weight of the pairwise discordance term; needs the unisurv.sorted_pairs wrapper and "
            "the unisurv.pairwise trainer. 0 reproduces the original 5-fold grid-search script."
        ),
    )


# --- datasets and wrappers ----------------------------------------------------------------------


class SplitParams(Params):
    """Time bins and splits shared by the unisurv tables."""

    t_max: int = Field(96, ge=2, description="Number of time bins (the model's T_max).")
    too_long: Literal["error", "coarsen"] = Field(
        "error",
        description="When a time falls at or past bin t_max: fail, or widen the bins by the "
        "smallest integer factor that fits.",
    )
    test_size: float = Field(0.2, gt=0, lt=1, description="Fraction held out for test.")
    val_size: float = Field(0.1, ge=0, lt=1, description="Fraction of the rest held out for val.")
    num_folds: int | None = Field(
        None, ge=2, description="k-fold CV: fold `fold` of a stratified k-fold is the test split."
    )
    fold: int = Field(0, ge=0, description="Which fold is the test split (with num_folds).")
    split_seed: int = Field(42, description="random_state of the stratified splits.")

    @model_validator(mode="after")
    def _fold_in_range(self) -> SplitParams:
        if self.num_folds is not None and self.fold >= self.num_folds:
            raise ValueError(f"fold ({self.fold}) must be below num_folds ({self.num_folds})")
        return self


class SksurvDatasetParams(SplitParams):
    """Which scikit-survival dataset, its time unit, bins and splits."""

    name: Literal["gbsg2", "whas500", "veterans", "aids", "flchain"] = Field(
        "gbsg2", description="Dataset bundled with scikit-survival."
    )
    days_per_bin: float = Field(30.0, gt=0, description="Days per time bin (30: months).")


class CSVDatasetParams(SplitParams):
    """Where a user's survival table lives and which columns mean what."""

    path: str = Field(description="CSV file, one row per subject.")
    time_column: str = Field("time", description="Observed time (event or censoring).")
    event_column: str = Field("event", description="1 = event, 0 = right-censored.")
    feature_columns: list[str] | None = Field(
        None, description="Static covariates; default: every other column."
    )
    time_per_bin: float = Field(
        1.0, gt=0, description="Time units per bin (e.g. 30 for days -> months)."
    )
    longitudinal_path: str | None = Field(
        None,
        description="Optional .npy array (N, C, t_max, W) of longitudinal measurements aligned "
        "with the rows (for the transformer's chunk-CNN branch).",
    )


class SyntheticDatasetParams(SplitParams):
    """Size and shape of the discretised-lognormal generator."""

    t_max: int = Field(48, ge=2, description="Number of monthly bins.")
    num_samples: int = Field(1000, ge=20, description="Subjects.")
    num_features: int = Field(3, ge=1, le=5, description="Covariates that move the location.")
    censoring: float = Field(0.5, ge=0, lt=1, description="Probability of random censoring.")
    sigma: float = Field(0.4, gt=0, description="Scale of log time.")
    seed: int = Field(0, description="Generator seed.")


class KMMarginWrapperParams(Params):
    """Options of the Kaplan–Meier margin wrapper."""

    how: Literal["toTmax", "Linearext"] = Field(
        "toTmax", description="Tail area up to the largest time, or after a linear extension."
    )
    km_fit: Literal["train", "per_split_upsampled"] = Field(
        "train",
        description=(
            "'train': one KM fit on the original training split, reused for val/test. "
            "'per_split_upsampled': the original code, a fit per split, the training one on the "
            "event-upsampled rows."
        ),
    )
    seed: int = Field(42, description="random_state of the upsampling for 'per_split_upsampled'.")


# --- backbone and adapters ----------------------------------------------------------------------


class TimeTokenTransformerParams(Params):
    """Sizes and fidelity options of the time-token Transformer (backbone and head share them)."""

    t_max: int | None = Field(
        None, ge=2, description="Time bins (tokens); default: the dataset's t_max, else 96."
    )
    d_model: int = Field(64, ge=2, description="Token width (the paper's code: 512).")
    num_layers: int = Field(2, ge=1, description="Encoder layers N (the paper's code: 4).")
    num_heads: int = Field(4, ge=1, description="Attention heads h (the paper's code: 8).")
    d_ff: int = Field(128, ge=1, description="Feed-forward width (the paper's code: 2048).")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout everywhere (as the original).")
    layernorm: Literal["torch", "original"] = Field(
        "torch",
        description=(
            "'torch': nn.LayerNorm. 'original': the reference code's variant "
            "gamma * (x - mean) / (unbiased std + 1e-6) + beta."
        ),
    )
    final_norm: bool = Field(
        False,
        description="Apply a LayerNorm after the stack. The original builds one (Encoder.norm) "
        "but never applies it; off, it is left out (2·d_model fewer, never-trained parameters).",
    )
    use_mask: bool = Field(
        False, description="Mask padded bins with the batch's 'mask' (B, T_max) (original: no)."
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TimeTokenTransformerParams:
        if self.d_model % self.num_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must divide d_model ({self.d_model}); "
                f"e.g. d_model: {self.num_heads * max(1, self.d_model // self.num_heads)}"
            )
        if self.d_model % 2:
            raise ValueError(f"d_model must be even (sinusoidal encoding), got {self.d_model}")
        return self


def _check_period(t_max: int | None, time_period: int) -> None:
    """Raise when ``time_period`` does not divide a given ``t_max``, listing the divisors."""
    if t_max is not None and t_max % time_period:
        raise ValueError(
            f"time_period ({time_period}) must divide t_max ({t_max}); "
            f"divisors of {t_max} are {[p for p in range(3, t_max + 1) if t_max % p == 0]}"
        )


class UniSurvBackboneParams(TimeTokenTransformerParams):
    """Sizes and fidelity options of the time-token Transformer."""

    in_features: int | None = Field(
        None, ge=1, description="Static feature width F; default: the dataset's num_features."
    )
    longitudinal: bool = Field(
        False, description="Add the chunk-CNN branch over batch['longitudinal'] (B, C, T_max, W)."
    )
    in_channels: int = Field(3, ge=1, description="Channels C of the longitudinal image.")
    width: int = Field(30, ge=10, description="Columns W of the longitudinal image.")
    time_period: int = Field(6, ge=3, description="Rows P per chunk; must divide t_max.")

    @model_validator(mode="after")
    def _period_divides_t_max(self) -> UniSurvBackboneParams:
        if self.longitudinal:
            _check_period(self.t_max, self.time_period)
        return self


class PDFHeadAdapterParams(TimeTokenTransformerParams):
    """Sizes and fidelity options of the discrete-time density head."""


_T_MAX = Field(None, ge=2, description="Time bins (tokens); default: the dataset's t_max, else 96.")


class StaticTokenizerAdapterParams(Params):
    """Options of the static tokeniser adapter."""

    t_max: int | None = _T_MAX


class ChunkCNNAdapterParams(Params):
    """Shape of the longitudinal image read by the chunk-CNN adapter."""

    t_max: int | None = _T_MAX
    in_channels: int = Field(3, ge=1, description="Channels C of the longitudinal image.")
    width: int = Field(30, ge=10, description="Columns W of the longitudinal image.")
    time_period: int = Field(6, ge=3, description="Rows P per chunk; must divide t_max.")

    @model_validator(mode="after")
    def _period_divides_t_max(self) -> ChunkCNNAdapterParams:
        _check_period(self.t_max, self.time_period)
        return self


# --- sampler, evaluator -------------------------------------------------------------------------


class EventBalancedSamplerParams(Params):
    """Options of the event/censored oversampler (UniSurv ``unbalance_solve``)."""

    direction: Literal["minority", "events"] = Field(
        "minority",
        description=(
            "'minority': oversample the rarer of events/censored. 'events': the original code, "
            "always resample the events to the censored count (down-samples when events dominate)."
        ),
    )
    mode: Literal["fixed", "per_epoch"] = Field(
        "fixed",
        description="'fixed': one resample at set-up (as the code), reshuffled each epoch; "
        "'per_epoch': a fresh resample every epoch.",
    )
    seed: int = Field(42, description="random_state of the 'fixed' resample (the code's 42).")


class SurvivalEvaluatorParams(Params):
    """Prediction rule and which extra metrics to compute."""

    pred_method: Literal["mean", "median"] = Field(
        "mean", description="Predicted time: the density's mean (sum of S) or its median."
    )
    extras: bool = Field(
        True,
        description=(
            "Also compute Uno's C, IBS, mean time-dependent AUC and Antolini's C (not in the repo)."
        ),
    )
    quantiles: tuple[float, float] = Field(
        (0.1, 0.9),
        description="Quantiles of the evaluated times bounding the IBS/AUC grid and Uno's tau.",
    )
