"""The scorers behind cares.toxicity and cares.llm_judge: local files only, clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from asklepios_cares import params as p
from asklepios_cares.judges import LLMJudge, hf_judge, toxicity_scorer
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.generation import GenerationCollate

CTX = BuildContext()


def _write_tiny_judge(directory: Path) -> Path:
    """Write a tiny random Llama causal LM with a word-level tokenizer and a chat template."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<pad>", "<s>", "</s>", "1", "2", "7", "score", "the", "answer", ":"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>", eos_token="</s>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    config = LlamaConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=len(words),
        max_position_embeddings=1024,
        pad_token_id=1,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _batch(n: int) -> dict:
    samples = [
        {
            "qid": f"q{i}",
            "image": None,
            "text": "What is shown?",
            "followups": [],
            "index": i,
            "reference": "A normal retina.",
            "qtype": "open",
        }
        for i in range(n)
    ]
    return GenerationCollate()(samples)


def test_a_local_causal_lm_judges_through_transformers(tmp_path: Path) -> None:
    directory = _write_tiny_judge(tmp_path / "judge")
    judge = hf_judge(p.JudgeSpec(model_dir=str(directory), max_new_tokens=2))
    reply = judge([{"role": "user", "content": "score the answer"}])
    assert isinstance(reply, str)
    evaluator = LLMJudge(p.LLMJudgeParams(judge={"model_dir": str(directory)}), CTX)
    evaluator.update({"text": ["x", "y"], "turns": [["x"], ["y"]]}, _batch(2))
    result = {k: float(v) for k, v in evaluator.compute().items()}
    assert result["scored"] + result["skipped"] == 2.0  # a random model's replies: any mix


def test_judge_and_scorer_files_missing_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="not a local Hugging Face model directory"):
        hf_judge(p.JudgeSpec(model_dir=str(tmp_path)))
    with pytest.raises(ComponentError, match="not a local Hugging Face model directory"):
        LLMJudge(p.LLMJudgeParams(), CTX)  # the default judge needs a model_dir
    spec = p.ToxicityScorerSpec(kind="detoxify", checkpoint=str(tmp_path / "missing.ckpt"))
    if importlib.util.find_spec("detoxify") is None:
        with pytest.raises(ComponentError, match=r"pip install 'asklepios-cares\[detoxify\]'"):
            toxicity_scorer(spec)
    else:
        with pytest.raises(ComponentError, match="offline from local files only"):
            toxicity_scorer(spec)


def test_the_stub_scorer_is_picklable_and_deterministic() -> None:
    import pickle

    from asklepios_cares.judges import Toxicity

    evaluator = Toxicity(p.ToxicityParams(scorer={"kind": "length_stub"}), CTX)
    clone = pickle.loads(pickle.dumps(evaluator))
    assert clone.scorer("abc") == evaluator.scorer("abc") == 0.3
