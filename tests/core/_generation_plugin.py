"""An in-memory test plugin ``gen``: questions, a generative model and a text evaluator."""

from __future__ import annotations

from typing import Any

from asklepios_sdk import EmptyParams, Params, hookimpl


class QuestionsParams(Params):
    """How many test questions."""

    count: int = 10


class EchoModelParams(Params):
    """Where to log generated answers, and after how many generate calls to kill the process."""

    log: str = ""
    kill_after_calls: int = 0


@hookimpl
def register_datasets(register: Any) -> None:
    register("questions", "_generation_components:Questions", QuestionsParams)


@hookimpl
def register_backbones(register: Any) -> None:
    register("echo", "_generation_components:EchoModel", EchoModelParams)


@hookimpl
def register_evaluators(register: Any) -> None:
    register("answers", "_generation_components:AnswerScore", EmptyParams)
