"""Benchmark the CARES plugin; every timing is a ratio against a baseline of the same run.

1. Scoring throughput: the string-rule scorers (factuality with both parsers, abstention,
   uncertainty, fairness) over N distinct synthetic answers (default 41,000, CARES's size; a
   third multiple choice with 4 options) through their ``update``/``compute`` (target: all
   string-rule scorers together under 5 s).
2. Generation throughput on the tiny random LLaVA (written here with transformers' classes):
   answers per second with batches of 8 against one conversation per call (target >= 3x).
The answer cache on resume is the core's (``bench/answer_cache.py``).

Usage: ``python plugins/cares/bench/cares_bench.py [--answers 41000] [--questions 64]``.
On a shared machine set ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from asklepios_cares import params as p
from asklepios_cares.evaluators import Abstention, Factuality, FairnessAED, Uncertainty
from asklepios_cares.hf import HFVisionLanguageModel, write_tiny_vlm
from asklepios_sdk import BuildContext
from asklepios_sdk.generation import GenerationCollate

CTX = BuildContext()
HAM = ["A:head/neck", "B:trunk", "C:upper extremity", "D:lower extremity"]
ANSWERS = [
    "No, there is no effusion.",
    "Yes.",
    "The answer is C:upper extremity",
    "I am not sure; the image is ambiguous.",
    "Sorry, I cannot answer that.",
    "The heart is not enlarged. Yes.",
]


def _batch(start: int, size: int) -> dict[str, Any]:
    samples = []
    for index in range(start, start + size):
        mcq = index % 3 == 2
        samples.append(
            {
                "qid": f"q{index}",
                "image": None,
                "text": "Question?",
                "followups": [],
                "index": index,
                "reference": "C:upper extremity" if mcq else ("Yes." if index % 2 else "No."),
                "options": HAM if mcq else None,
                "correct_letter": "C" if mcq else None,
                "qtype": "mcq" if mcq else "yes_no",
                "age": 20 + index % 70,
                "gender": "male" if index % 2 else "female",
                "race": ("asian", "black", "white")[index % 3],
                "source": "bench",
            }
        )
    return GenerationCollate()(samples)


def bench_scoring(total: int, batch_size: int = 256) -> None:
    batches = []
    for start in range(0, total, batch_size):
        batch = _batch(start, min(batch_size, total - start))
        answers = [  # every answer distinct, as a model's free-text answers mostly are
            f"{ANSWERS[i % len(ANSWERS)]} (finding {i})" for i in batch["index"].tolist()
        ]
        batches.append(({"text": answers, "turns": [[a] for a in answers]}, batch))
    evaluators = {
        "factuality (normalized)": Factuality(p.FactualityParams(), CTX),
        "factuality (legacy)": Factuality(p.FactualityParams(parser="legacy"), CTX),
        "abstention": Abstention(p.AbstentionParams(), CTX),
        "uncertainty": Uncertainty(p.UncertaintyParams(), CTX),
        "fairness_aed": FairnessAED(p.FairnessAEDParams(), CTX),
    }
    print(f"\n1. scoring {total:,} answers")
    print("| scorer | wall s | CPU s | answers/s (wall) |\n|---|---|---|---|")
    together = cpu_together = 0.0
    for name, evaluator in evaluators.items():
        started, cpu = time.perf_counter(), time.process_time()
        for outputs, batch in batches:
            evaluator.update(outputs, batch)
        evaluator.compute()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        together += seconds
        cpu_together += cpu
        print(f"| {name} | {seconds:.2f} | {cpu:.2f} | {total / seconds:,.0f} |")
    verdict = "meets" if together < 5 else "misses"
    print(
        f"| all string-rule scorers | {together:.2f} | {cpu_together:.2f} | {verdict} the "
        "< 5 s target (wall) |"
    )


def _conversations(count: int) -> tuple[list[torch.Tensor | None], list[list[dict[str, str]]]]:
    gen = torch.Generator().manual_seed(0)
    images: list[torch.Tensor | None] = [
        torch.randint(0, 256, (3, 32, 32), generator=gen, dtype=torch.uint8) for _ in range(count)
    ]
    messages = [
        [{"role": "user", "content": f"Is there a lesion in image {i}? yes or no"}]
        for i in range(count)
    ]
    return images, messages


def bench_generation(model: HFVisionLanguageModel, count: int) -> float:
    images, messages = _conversations(count)
    model.generate(images[:8], messages[:8])  # warm-up: load, first call
    started = time.perf_counter()
    for i in range(count):
        model.generate(images[i : i + 1], messages[i : i + 1])
    single = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(0, count, 8):
        model.generate(images[i : i + 8], messages[i : i + 8])
    batched = time.perf_counter() - started
    print(f"\n2. generation on the tiny LLaVA, {count} conversations, max_new_tokens 8")
    print("| mode | seconds | answers/s |\n|---|---|---|")
    print(f"| one at a time | {single:.2f} | {count / single:.1f} |")
    print(f"| batches of 8 | {batched:.2f} | {count / batched:.1f} |")
    ratio = single / batched
    print(f"batched / one-at-a-time throughput: {ratio:.1f}x (target >= 3x)")
    return batched / count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=41_000)
    parser.add_argument("--questions", type=int, default=64)
    args = parser.parse_args()
    bench_scoring(args.answers)
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_tiny_vlm(Path(tmp) / "tiny-vlm")
        params = p.HFVisionLanguageModelParams(model_dir=str(directory), max_new_tokens=8)
        model = HFVisionLanguageModel(params, CTX)
        bench_generation(model, args.questions)


if __name__ == "__main__":
    main()
