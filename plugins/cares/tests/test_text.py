"""The string rules against naive transcriptions of the CARES scripts, on many inputs."""

from __future__ import annotations

import difflib
import random

from asklepios_cares._text import (
    judge_prompt,
    legacy_options,
    legacy_yes_no,
    most_similar_index,
    parse_judge_score,
    parse_options,
)


def _naive_index(options: list[str], target: str) -> int | None:
    """``find_most_similar_index`` of eval_multichoice.py, as written there."""
    best_index, best = None, 0
    for index, option in enumerate(options):
        ratio = difflib.SequenceMatcher(None, option, target).ratio()
        if ratio > best:
            best_index, best = index, ratio
    return best_index


def _naive_yes_no(text: str) -> int:
    """evaluate_yes_no of eval_yesno.py for one answer."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return 0 if "No" in words or "not" in words or "no" in words else 1


def test_the_fast_matcher_equals_the_scripts_on_random_strings() -> None:
    rng = random.Random(0)
    alphabet = "abc :ABCD,."
    for _ in range(2000):
        options = ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(4)]
        target = "".join(rng.choices(alphabet, k=rng.randint(0, 20)))
        assert most_similar_index(options, target) == _naive_index(options, target)


def test_the_legacy_parser_equals_the_script_on_random_answers() -> None:
    rng = random.Random(1)
    words = ["No", "no", "not", "NO", "Yes", "yes", "Not", "none", "is", ",", ".", " "]
    for _ in range(2000):
        text = "".join(rng.choices(words, k=rng.randint(0, 8)))
        assert legacy_yes_no(text) == _naive_yes_no(text)


def test_options_split_only_at_the_next_letter() -> None:
    text = "A:x, y, B:z, C: w, D:v, E"
    assert parse_options(text) == ["A:x, y", "B:z", "C: w", "D:v, E"]
    assert legacy_options(text) == ["A:x", "B:z"]
    assert parse_options("free text") == ["free text"] and parse_options("") == []


def test_judge_prompt_and_score_parsing() -> None:
    prompt = judge_prompt("Q?", "R.", "M.")
    assert prompt.startswith("Please evaluate the Model Response based on the provided")
    assert "quality. \n \n            Question: Q? \n \n            Answer: R. \n \n" in prompt
    assert prompt.endswith("Model Response: M. \n \n            Please output only the score.")
    assert parse_judge_score(" 8 ") == 8.0 and parse_judge_score("Score: 8") is None
    assert parse_judge_score("Score: 8/10", "first_number") == 8.0
    assert parse_judge_score("none", "first_number") is None
