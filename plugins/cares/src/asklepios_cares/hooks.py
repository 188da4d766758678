"""Hooks of plugin ``cares``: one ``register`` call per component, and the report at run end.

The registration hooks import the params models only; every target is a lazy
``"module:Class"`` reference, imported when the component is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asklepios_sdk import Register, hookimpl

if TYPE_CHECKING:
    from asklepios_sdk import RunState
    from asklepios_sdk.registration import RegisterCommand

__all__ = [
    "register_augmentations",
    "register_backbones",
    "register_commands",
    "register_datasets",
    "register_evaluators",
    "run_end",
]


@hookimpl
def register_datasets(register: Register) -> None:
    """Register the CARES question file reader and the bundled demo questions."""
    from asklepios_cares import params as p

    register("jsonl", "asklepios_cares.datasets:CaresJsonl", p.CaresJsonlParams)
    register("fixture", "asklepios_cares.datasets:CaresFixture", p.CaresFixtureParams)


@hookimpl
def register_augmentations(register: Register) -> None:
    """Register the task prompts and the Gaussian image noise."""
    from asklepios_cares import params as p

    register("task_prompt", "asklepios_cares.augmentations:TaskPrompt", p.TaskPromptParams)
    register("image_noise", "asklepios_cares.augmentations:ImageNoise", p.ImageNoiseParams)


@hookimpl
def register_backbones(register: Register) -> None:
    """Register the models under test: local Hugging Face VLMs and the rule-based stub."""
    from asklepios_cares import params as p

    register("hf_vlm", "asklepios_cares.hf:HFVisionLanguageModel", p.HFVisionLanguageModelParams)
    register(
        "stub_vlm",
        "asklepios_cares.stub:StubVisionLanguageModel",
        p.StubVisionLanguageModelParams,
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    """Register the five dimensions' scorers."""
    from asklepios_cares import params as p

    register("factuality", "asklepios_cares.evaluators:Factuality", p.FactualityParams)
    register("abstention", "asklepios_cares.evaluators:Abstention", p.AbstentionParams)
    register("uncertainty", "asklepios_cares.evaluators:Uncertainty", p.UncertaintyParams)
    register("fairness_aed", "asklepios_cares.evaluators:FairnessAED", p.FairnessAEDParams)
    register("toxicity", "asklepios_cares.judges:Toxicity", p.ToxicityParams)
    register("llm_judge", "asklepios_cares.judges:LLMJudge", p.LLMJudgeParams)


@hookimpl
def register_commands(register: RegisterCommand) -> None:
    """Register ``asklepios cares report RUN [RUN ...] --out DIR``."""
    register("report", "asklepios_cares.report:main")


@hookimpl
def run_end(run: RunState, summary: Mapping[str, Any]) -> None:
    """Write the CARES report (tables per dimension, radar chart) of a run that has scores."""
    if not run.is_main:
        return
    from asklepios_cares.report import has_cares_metrics, write_report

    if has_cares_metrics(summary):
        write_report(run.output_dir, summary)
