"""The answer cache: keys, durable appends, partial lines after a kill, rank files merged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from asklepios.engine.answers import AnswerCache, CachedGeneration, answer_key, cached_generation
from asklepios_sdk import BuildContext
from asklepios_sdk.generation import GenerationCollate

MESSAGES = [{"role": "user", "content": "Is it?"}]


def _record(key: str, answer: str) -> dict[str, str]:
    return {"key": key, "qid": "q", "model": "m", "turn": 0, "answer": answer}


def test_the_key_changes_with_question_model_conversation_and_image() -> None:
    base = answer_key("q1", "m@abc", MESSAGES, "img")
    assert base == answer_key("q1", "m@abc", [dict(m) for m in MESSAGES], "img")
    others = [
        answer_key("q2", "m@abc", MESSAGES, "img"),
        answer_key("q1", "m@abd", MESSAGES, "img"),
        answer_key("q1", "m@abc", [{"role": "user", "content": "Is it? "}], "img"),
        answer_key("q1", "m@abc", MESSAGES, "img2"),
    ]
    assert len({base, *others}) == 5


def test_answers_persist_and_every_rank_file_is_read(tmp_path: Path) -> None:
    rank0, rank1 = AnswerCache(tmp_path, 0), AnswerCache(tmp_path, 1)
    rank0.add([_record("a", "yes"), _record("b", "no")])
    rank1.add([_record("c", "maybe")])
    assert (tmp_path / "rank-0.jsonl").read_text().count("\n") == 2
    merged = AnswerCache(tmp_path, 0)
    assert (merged.get("a"), merged.get("b"), merged.get("c")) == ("yes", "no", "maybe")
    assert len(merged) == 3 and merged.get("d") is None


def test_a_partial_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path) -> None:
    cache = AnswerCache(tmp_path, 0)
    cache.add([_record("a", "yes")])
    whole = json.dumps(_record("b", "no")) + "\n"
    with open(cache.path, "a") as handle:  # a kill in the middle of a write
        handle.write(whole[: len(whole) // 2])
    reread = AnswerCache(tmp_path, 0)
    assert reread.get("a") == "yes" and reread.get("b") is None
    reread.add([_record("c", "maybe")])
    lines = cache.path.read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "c"]
    assert AnswerCache(tmp_path, 1).get("c") == "maybe"


def test_a_line_without_its_newline_does_not_count(tmp_path: Path) -> None:
    path = tmp_path / "rank-3.jsonl"
    path.write_text(json.dumps(_record("a", "yes")) + "\n" + json.dumps(_record("b", "no")))
    cache = AnswerCache(tmp_path, 0)
    assert cache.get("a") == "yes" and cache.get("b") is None


def _model(tmp_path: Path):
    from _generation_components import EchoModel
    from _generation_plugin import EchoModelParams

    return EchoModel(EchoModelParams(log=str(tmp_path / "log.jsonl")), BuildContext())


def _batch(count: int = 6):
    from _generation_components import QuestionSplit

    split = QuestionSplit(count, seed=0)
    return GenerationCollate()([split[i] for i in range(count)])


def test_cached_generation_generates_each_answer_once(tmp_path: Path) -> None:
    model = _model(tmp_path)
    first = CachedGeneration(model, AnswerCache(tmp_path / "answers", 0))
    batch = _batch()
    outputs = first(batch)
    assert first.generated == 8 and first.hits == 0  # 6 first turns, 2 follow-ups (q0, q3)
    assert model.calls == 2  # one batched call per turn
    assert outputs == model(batch)  # the same answers as without a cache
    again = CachedGeneration(model, AnswerCache(tmp_path / "answers", 0))
    assert again(batch) == outputs
    assert again.generated == 0 and again.hits == 8 and model.calls == 4


def test_another_image_or_prompt_is_answered_anew(tmp_path: Path) -> None:
    model = _model(tmp_path)
    cache = AnswerCache(tmp_path / "answers", 0)
    CachedGeneration(model, cache)(_batch(2))
    noisy = _batch(2)
    noisy["image"] = [torch.clamp(i.int() + 1, 0, 255).to(torch.uint8) for i in noisy["image"]]
    prompted = _batch(2)
    prompted["text"] = [t + " Answer briefly." for t in prompted["text"]]
    for batch in (noisy, prompted):
        run = CachedGeneration(model, cache)
        run(batch)
        assert run.generated == 3 and run.hits == 0


def test_only_generative_models_get_a_cache(tmp_path: Path) -> None:
    assert cached_generation(torch.nn.Linear(2, 2), tmp_path, 0) is None
    assert isinstance(cached_generation(_model(tmp_path), tmp_path, 0), CachedGeneration)
