"""Hooks of plugin ``unisurv``: one ``register`` call per component.

The registration hooks import the params models only; every target is a lazy
``"module:Class"`` reference, imported when the component is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asklepios_sdk import hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import Register

__all__ = [
    "register_adapters",
    "register_backbones",
    "register_datasets",
    "register_evaluators",
    "register_losses",
    "register_samplers",
    "register_trainers",
]


@hookimpl
def register_losses(register: Register) -> None:
    """Register ``unisurv.mmv``."""
    from asklepios_unisurv import params as p

    register("mmv", "asklepios_unisurv.losses:MMVLoss", p.MMVLossParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the survival datasets and the ``km_margin`` / ``sorted_pairs`` wrappers."""
    from asklepios_sdk import EmptyParams

    from asklepios_unisurv import params as p

    register("sksurv", "asklepios_unisurv.datasets:SksurvDataset", p.SksurvDatasetParams)
    register("csv", "asklepios_unisurv.datasets:CSVDataset", p.CSVDatasetParams)
    register("synthetic", "asklepios_unisurv.datasets:SyntheticDataset", p.SyntheticDatasetParams)
    register("km_margin", "asklepios_unisurv.margins:KMMarginWrapper", p.KMMarginWrapperParams)
    register("sorted_pairs", "asklepios_unisurv.pairs:SortedPairsWrapper", EmptyParams)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register ``unisurv.transformer``."""
    from asklepios_unisurv import params as p

    register(
        "transformer", "asklepios_unisurv.transformer:UniSurvBackbone", p.UniSurvBackboneParams
    )


@hookimpl
def register_adapters(register: Register) -> None:
    """Register ``unisurv.pdf_head``, ``unisurv.static_tokenizer`` and ``unisurv.chunk_cnn``."""
    from asklepios_unisurv import params as p

    register("pdf_head", "asklepios_unisurv.transformer:PDFHeadAdapter", p.PDFHeadAdapterParams)
    register(
        "static_tokenizer",
        "asklepios_unisurv.adapters:StaticTokenizerAdapter",
        p.StaticTokenizerAdapterParams,
    )
    register("chunk_cnn", "asklepios_unisurv.adapters:ChunkCNNAdapter", p.ChunkCNNAdapterParams)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register ``unisurv.event_balanced``."""
    from asklepios_unisurv import params as p

    register(
        "event_balanced",
        "asklepios_unisurv.samplers:EventBalancedSampler",
        p.EventBalancedSamplerParams,
    )


@hookimpl
def register_trainers(register: Register) -> None:
    """Register ``unisurv.pairwise``."""
    from asklepios_sdk import EmptyParams

    register("pairwise", "asklepios_unisurv.pairs:PairwiseTrainer", EmptyParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``unisurv.survival``."""
    from asklepios_unisurv import params as p

    register("survival", "asklepios_unisurv.metrics:SurvivalEvaluator", p.SurvivalEvaluatorParams)
