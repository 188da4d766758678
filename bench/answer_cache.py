"""Benchmark the core's answer cache: resuming skips finished answers instead of regenerating.

A resumed evaluation reads the cache, looks each question's key up and generates nothing; the
baseline, measured in the same run, is generating and storing the same answers with the tiny
random LLaVA that the ``cares`` plugin writes with transformers' own classes (the cheapest real
generator there is: with a real VLM the ratio only grows).

Usage: ``python bench/answer_cache.py [--questions 64]`` (needs the ``cares`` plugin installed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from asklepios.engine.answers import AnswerCache, CachedGeneration
from asklepios_cares import params as p
from asklepios_cares.hf import HFVisionLanguageModel, write_tiny_vlm
from asklepios_sdk import BuildContext
from asklepios_sdk.generation import GenerationCollate


def _batches(count: int, size: int = 8) -> list[dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    samples = [
        {
            "qid": f"q{i}",
            "image": torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8),
            "text": f"Is there a lesion in image {i}? yes or no",
            "followups": [],
            "index": i,
        }
        for i in range(count)
    ]
    collate = GenerationCollate()
    return [collate(samples[i : i + size]) for i in range(0, count, size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=64)
    args = parser.parse_args()
    batches = _batches(args.questions)
    with tempfile.TemporaryDirectory() as tmp:
        params = p.HFVisionLanguageModelParams(
            model_dir=str(write_tiny_vlm(Path(tmp) / "tiny-vlm")), max_new_tokens=8
        )
        model = HFVisionLanguageModel(params, BuildContext())
        started = time.perf_counter()
        first = CachedGeneration(model, AnswerCache(Path(tmp) / "answers", 0))
        for batch in batches:
            first(batch)
        generating = time.perf_counter() - started
        started = time.perf_counter()
        again = CachedGeneration(model, AnswerCache(Path(tmp) / "answers", 0))
        for batch in batches:
            again(batch)
        skipping = time.perf_counter() - started
    assert again.generated == 0 and again.hits == args.questions
    count = args.questions
    print(f"answer cache, {count} finished answers")
    print("| pass | seconds | per answer |\n|---|---|---|")
    per_answer = generating / count * 1e3
    print(f"| generate (tiny LLaVA) and store | {generating:.3f} | {per_answer:.2f} ms |")
    print(f"| resume: read and skip | {skipping:.3f} | {skipping / count * 1e3:.3f} ms |")
    print(f"skipping is {generating / skipping:.0f}x faster than generating with the tiny model")


if __name__ == "__main__":
    main()
