"""An in-memory test plugin ``seq``: a variable-length video dataset, model, loss and evaluator."""

from __future__ import annotations

from typing import Any

from asklepios_sdk import EmptyParams, Params, hookimpl


class ToyVideosParams(Params):
    """Videos per split."""

    train: int = 12
    val: int = 5
    test: int = 7


@hookimpl
def register_datasets(register: Any) -> None:
    register("videos", "_sequence_components:ToyVideos", ToyVideosParams)


@hookimpl
def register_backbones(register: Any) -> None:
    register("conv", "_sequence_components:StepConv", EmptyParams)


@hookimpl
def register_losses(register: Any) -> None:
    register("step_ce", "_sequence_components:StepCrossEntropy", EmptyParams)


@hookimpl
def register_evaluators(register: Any) -> None:
    register("videos", "_sequence_components:VideoAccuracy", EmptyParams)
