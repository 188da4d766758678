"""Registration hooks of the ``unisurv`` plugin: each imports its family module when called."""

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
    from asklepios_unisurv import losses

    register("mmv", losses.build_mmv_loss, losses.MMVLossParams)


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the survival datasets and the ``km_margin`` / ``sorted_pairs`` wrappers."""
    from asklepios_sdk import EmptyParams

    from asklepios_unisurv import datasets, margins, pairs

    register("sksurv", datasets.build_sksurv, datasets.SksurvParams)
    register("csv", datasets.build_csv, datasets.CSVParams)
    register("synthetic", datasets.build_synthetic, datasets.SyntheticParams)
    register("km_margin", margins.build_km_margin, margins.KMMarginParams)
    register("sorted_pairs", pairs.build_sorted_pairs, EmptyParams)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register ``unisurv.transformer``."""
    from asklepios_unisurv import transformer

    register("transformer", transformer.build_transformer, transformer.TransformerParams)


@hookimpl
def register_adapters(register: Register) -> None:
    """Register ``unisurv.pdf_head``, ``unisurv.static_tokenizer`` and ``unisurv.chunk_cnn``."""
    from asklepios_unisurv import adapters, transformer

    register("pdf_head", transformer.build_pdf_head, transformer.PDFHeadParams)
    register("static_tokenizer", adapters.build_static_tokenizer, adapters.StaticTokenizerParams)
    register("chunk_cnn", adapters.build_chunk_cnn, adapters.ChunkCNNParams)


@hookimpl
def register_samplers(register: Register) -> None:
    """Register ``unisurv.event_balanced``."""
    from asklepios_unisurv import samplers

    register("event_balanced", samplers.build_event_balanced, samplers.EventBalancedParams)


@hookimpl
def register_trainers(register: Register) -> None:
    """Register ``unisurv.pairwise``."""
    from asklepios_sdk import EmptyParams

    from asklepios_unisurv import pairs

    register("pairwise", pairs.build_pairwise, EmptyParams)


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register ``unisurv.survival``."""
    from asklepios_unisurv import metrics

    register("survival", metrics.build_survival, metrics.SurvivalEvaluatorParams)
