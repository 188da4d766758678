"""An in-memory test plugin ``synth``: requests, a generator and a reader of what it made."""

from __future__ import annotations

from typing import Any

from asklepios_sdk import EmptyParams, Params, hookimpl


class RequestsParams(Params):
    """How many generation requests, over how many classes."""

    count: int = 10
    classes: int = 3


class PainterParams(Params):
    """Image size; where to log generate calls; after how many calls to kill the process."""

    size: int = 8
    log: str = ""
    kill_after_calls: int = 0


class GeneratedSetParams(Params):
    """The generation stage whose items to train on (or the folder of another run's)."""

    stage: str | None = None
    path: str | None = None


class JudgeParams(Params):
    """The generation stage this evaluator judges (its painter must not be too bright)."""

    stage: str = "paint"
    max_brightness: int = 1000


@hookimpl
def register_evaluators(register: Any) -> None:
    register("judge", "_synthesis_components:Judge", JudgeParams)


@hookimpl
def register_datasets(register: Any) -> None:
    register("requests", "_synthesis_components:Requests", RequestsParams)
    register("generated_set", "_synthesis_components:GeneratedSet", GeneratedSetParams)


@hookimpl
def register_backbones(register: Any) -> None:
    register("painter", "_synthesis_components:Painter", PainterParams)
    register("plain", "_synthesis_components:Plain", EmptyParams)
