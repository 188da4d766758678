"""Params models of the ``cares`` components (pydantic and the SDK only: cheap to import)."""

from __future__ import annotations

from typing import Literal

from asklepios_sdk.params import LocalDir, LocalFile, LocalPath, Params
from pydantic import Field

__all__ = [
    "AbstentionParams",
    "CaresFixtureParams",
    "CaresJsonlParams",
    "FactualityParams",
    "FairnessAEDParams",
    "HFVisionLanguageModelParams",
    "ImageNoiseParams",
    "JudgeSpec",
    "LLMJudgeParams",
    "StubVisionLanguageModelParams",
    "TaskPromptParams",
    "ToxicityParams",
    "ToxicityScorerSpec",
    "UncertaintyParams",
]

TASKS = Literal[
    "none",
    "uncertainty",
    "jailbreak-1",
    "jailbreak-2",
    "jailbreak-3",
    "overcautiousness-1",
    "overcautiousness-2",
    "overcautiousness-3",
    "toxicity",
    "privacy-z1",
    "privacy-z2",
    "privacy-f1",
    "privacy-f2",
    "robustness",
]
SOURCES = Literal["auto", "iuxray", "fairvlmed", "ham10000", "ol3i", "generic"]


class CaresJsonlParams(Params):
    """Where a CARES question file is, its schema, its images and the demographics to join."""

    file: LocalFile = Field(description="A CARES JSONL question file (one question per line).")
    source: SOURCES = Field(
        "auto",
        description="Its schema (spec §2); 'auto' tells it from the file name, else the fields.",
    )
    image_root: LocalDir | None = Field(
        None, description="Directory the 'image' paths are relative to (default: the file's)."
    )
    demographics_file: LocalFile | None = Field(
        None,
        description="Optional CSV or JSONL of demographics joined on 'join_on' (fills age, "
        "gender, race where the file has them; the CARES race source is NOT FOUND).",
    )
    join_on: Literal["image", "question_id"] = Field(
        "image", description="The question field the demographics file's key column matches."
    )
    limit: int | None = Field(None, ge=1, description="Read only the first N questions.")


class CaresFixtureParams(Params):
    """Where to write the bundled demo questions, and how many per source."""

    directory: LocalPath | None = Field(
        None, description="Where the fixture files go (default: ~/.cache/asklepios/cares-fixture)."
    )
    per_source: int = Field(6, ge=2, le=200, description="Questions per source file.")


class TaskPromptParams(Params):
    """Which CARES task prompt to apply, for which model family, and the quirks to keep."""

    task: TASKS = Field("none", description="One of the 13 task ids of spec §3.1 (or 'none').")
    model_family: str = Field(
        "llava-med",
        description="modify_inputfile.py's --model (llava-med, med-flamingo, medvint, radfm).",
    )
    legacy_quirks: bool = Field(
        False,
        description="Reproduce modify_inputfile.py's RadFM bug: rename 'image' to 'path' and "
        "apply no task prompt.",
    )
    uncertainty_turn: Literal["append", "follow_up"] = Field(
        "append",
        description="'append' the 'Are you sure' suffix to the question (CARES), or ask it as "
        "a 'follow_up' turn of the same conversation after the model's answer.",
    )


class ImageNoiseParams(Params):
    """Gaussian image noise of noise_add.py: variance, mode and seed."""

    var: float = Field(6.0, gt=0, description="Noise variance (CARES: 6.0, std ~ 2.449).")
    mode: Literal["gaussian_clip", "faithful_uint8_wrap"] = Field(
        "gaussian_clip",
        description="'gaussian_clip': float noise added and clipped to [0, 255]; "
        "'faithful_uint8_wrap': noise cast to uint8 (negatives wrap) and added saturating, "
        "as CARES did (use it to compare with the leaderboard).",
    )
    seed: int = Field(0, description="Seed; each image's noise is drawn from (seed, qid).")


class StubVisionLanguageModelParams(Params):
    """Rules of the deterministic stub model (for tests and demos; not a real model)."""

    refuse_keywords: list[str] = Field(
        default_factory=lambda: ["social security", "marital status", "dental"],
        description="Lowercased prompt substrings the stub refuses to answer.",
    )
    unsure_share: float = Field(
        0.25, ge=0, le=1, description="Share of follow-up questions answered with doubt."
    )
    seed: int = Field(0, description="Changes every rule-based choice.")
    latency_s: float = Field(
        0.0,
        ge=0,
        description="Seconds each generate call waits, standing in for a real model's cost "
        "(tests that kill an evaluation mid-way); changes no answer.",
    )


class HFVisionLanguageModelParams(Params):
    """A local Hugging Face image-text-to-text model directory and its decoding settings."""

    model_dir: LocalPath = Field(
        description="Local model directory (config.json, weights, processor with chat template)."
    )
    tiny_random: bool = Field(
        False,
        description="For tests and demos: write a tiny randomly initialised LLaVA (a few hundred "
        "KB) into model_dir when it has none, then load it like any model directory.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype ('auto': as saved)."
    )
    max_new_tokens: int = Field(64, ge=1, description="Longest answer, in tokens.")
    do_sample: bool = Field(False, description="Sample instead of greedy decoding.")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = Field(0, description="Seed of sampled decoding (per generate call).")
    image_tag: str = Field(
        "<image>",
        description="Placeholder in CARES prompts; removed from the text, the image goes first.",
    )


class FactualityParams(Params):
    """Which yes/no parser the factuality scorer uses."""

    parser: Literal["normalized", "legacy"] = Field(
        "normalized",
        description="'legacy' is eval_yesno.py's rule exactly (use it for the leaderboard).",
    )


class AbstentionParams(Params):
    """Whether a higher refusal rate is better for this task."""

    higher_is_better: bool = Field(
        True, description="True for harmful prompts; false for over-cautiousness."
    )


class UncertaintyParams(Params):
    """The yes/no parser used to tell correct answers to yes/no questions."""

    parser: Literal["normalized", "legacy"] = "normalized"


class FairnessAEDParams(Params):
    """Attributes, group size floor, age bins and parser of the AED (UNVERIFIED proposal)."""

    attributes: list[Literal["age", "gender", "race"]] = Field(
        # pydantic's stub does not narrow the list of str literals to the Literal items
        default_factory=lambda: ["age", "gender", "race"],  # type: ignore[arg-type]
        description="Attributes whose groups are compared.",
    )
    min_group_n: int = Field(1, ge=1, description="Groups with fewer items are ignored.")
    age_bins: list[float] = Field(
        default_factory=lambda: [40.0, 60.0, 80.0],
        description="Age bin edges (CARES binning NOT FOUND): [40, 60, 80] gives <40, 40-59, "
        "60-79, >=80.",
    )
    parser: Literal["normalized", "legacy"] = "normalized"


class ToxicityScorerSpec(Params):
    """The toxicity scorer: detoxify with a local checkpoint, or a stub for tests and demos."""

    kind: Literal["detoxify", "length_stub"] = Field(
        "detoxify",
        description="'detoxify' (pip install 'asklepios-cares[detoxify]'); 'length_stub' scores "
        "len(text) % 10 / 10, for tests and demos only.",
    )
    checkpoint: LocalFile | None = Field(None, description="Local detoxify checkpoint (.ckpt).")
    huggingface_config_path: LocalDir | None = Field(
        None, description="Local directory of the checkpoint's transformers config and tokenizer."
    )
    model_type: str = Field("original", description="detoxify model type.")


class ToxicityParams(Params):
    """The toxicity scorer and the aggregation rule."""

    scorer: ToxicityScorerSpec = Field(default_factory=ToxicityScorerSpec)
    legacy: bool = Field(
        False, description="eval_toxic.py's aggregate: 0 (not NaN) when nothing was scored."
    )


class JudgeSpec(Params):
    """The judge: a local Hugging Face causal LM, or a constant reply for tests and demos."""

    kind: Literal["hf_causal_lm", "constant"] = "hf_causal_lm"
    model_dir: LocalDir | None = Field(None, description="Local directory of the judge model.")
    reply: str = Field("7", description="The 'constant' judge's reply (tests and demos only).")
    max_new_tokens: int = Field(8, ge=1)
    temperature: float = Field(
        0.0, ge=0, description="0 decodes greedily; CARES used 0.7 with gpt-4-turbo."
    )
    seed: int = 0


class LLMJudgeParams(Params):
    """The judge, the score parser and the aggregation rule of the open-ended score."""

    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    parse: Literal["float", "first_number"] = Field(
        "float", description="'float' as eval_gpt_score.py; 'first_number' reads 'Score: 8'."
    )
    legacy: bool = Field(
        False,
        description="Reproduce eval_gpt_score.py's aggregate bug (every sample counts as 1).",
    )
    open_only: bool = Field(True, description="Score open-ended questions only.")
