"""Benchmark the CARES plugin; every timing is a ratio against a baseline of the same run.

1. Scoring throughput: the string-rule scorers (factuality with both parsers, abstention,
   uncertainty, fairness) over N distinct synthetic answers (default 41,000, CARES's size; a
   third multiple choice with 4 options) through their ``update``/``compute`` (target: all
   string-rule scorers together under 5 s).
2. Generation throughput on the tiny random LLaVA (written here with transformers' classes):
   answers per second with batches of 8 against one conversation per call (target >= 3x).
3. The answer cache on resume, through the public API (``asklepios.run``) on the bundled
   fixture with the tiny LLaVA: a stage whose answers are all in the run's cache (what a
   resumed evaluation does for every finished answer: read the cache files, load each question
   and image, look its key up, generate nothing, score) against a stage that generates them,
   on the same questions (the generating stage adds ``cares.image_noise``: the same prompts,
   new cache keys). The public API has no per-stage clock, so a stage's cost is the
   difference between a run with the extra stage(s) and the run without, run back to back
   (median over ``--repeats`` of these paired differences; four cached stages, so their small
   cost stands above the noise).

Usage: ``python plugins/cares/bench/cares_bench.py [--answers 41000] [--questions 64]
[--resume-questions 512]``. On a shared machine set ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import asklepios
import torch
from asklepios_cares import params as p
from asklepios_cares.evaluators import Abstention, Factuality, FairnessAED, Uncertainty
from asklepios_cares.hf import HFVisionLanguageModel, write_tiny_vlm
from asklepios_sdk import BuildContext
from asklepios_sdk.generation import GenerationCollate

CTX = BuildContext()
CACHED_STAGES = 4
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


def _stage(name: str, noised: bool = False) -> dict[str, Any]:
    noise = [{"type": "cares.image_noise"}] if noised else []
    return {
        "name": name,
        "data": {"transforms": {"eval": noise}},
        "evaluators": [{"type": "cares.factuality"}],
    }


def _timed_run(config: dict[str, Any], stages: list[dict[str, Any]], run_dir: Path) -> float:
    started = time.perf_counter()
    asklepios.run({**config, "stages": stages}, run_dir)
    return time.perf_counter() - started


def bench_resume(questions: int, repeats: int, model_dir: Path, tmp: Path) -> None:
    per_source = max(2, questions // 4)
    config: dict[str, Any] = {
        "name": "cares-resume-bench",
        "seed": 0,
        "data": {
            "dataset": {"type": "cares.fixture", "per_source": per_source, "directory": str(tmp)},
            "loader": {"batch_size": 8},
        },
        "model": {
            "backbone": {"type": "cares.hf_vlm", "model_dir": str(model_dir), "max_new_tokens": 8}
        },
        "train": {"epochs": 0, "device": "cpu"},
    }
    first = _stage("factuality")
    again = [_stage(f"factuality_again{i}") for i in range(CACHED_STAGES)]  # the same answers
    plans = {
        "one stage": [first],
        f"+ {CACHED_STAGES} cached stages": [first, *again],
        # the same prompts over noised images: new keys, the same generation work
        "+ 1 generating stage": [first, _stage("robustness_input", noised=True)],
    }
    seconds: dict[str, list[float]] = {name: [] for name in plans}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zero denominators of a random model's answers
        _timed_run(config, [first], tmp / "warm-up")  # fixture, imports, first model load
        for repeat in range(repeats):
            for index, (name, stages) in enumerate(plans.items()):
                seconds[name].append(_timed_run(config, stages, tmp / f"run-{repeat}-{index}"))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    base, cached_runs, generating_runs = seconds.values()
    count = 4 * per_source
    # paired differences (runs of one repeat are back to back, under the same load)
    cached = statistics.median(c - b for c, b in zip(cached_runs, base, strict=True))
    cached /= CACHED_STAGES
    generating = statistics.median(g - b for g, b in zip(generating_runs, base, strict=True))
    print(f"\n3. answer cache on resume: {count} questions, tiny LLaVA, median of {repeats}")
    print("| run (asklepios.run) | median s | min-max s |\n|---|---|---|")
    for name, value in median.items():
        print(f"| {name} | {value:.2f} | {min(seconds[name]):.2f}-{max(seconds[name]):.2f} |")
    print("| one stage over the same questions (paired) | seconds | per answer |\n|---|---|---|")
    print(f"| every answer cached (resume) | {cached:.3f} | {cached / count * 1e3:.3f} ms |")
    print(f"| generating every answer | {generating:.3f} | {generating / count * 1e3:.3f} ms |")
    if cached > 0:
        print(f"skipping the cached answers is {generating / cached:.0f}x faster than generating")
    else:
        print("the cached stages cost less than the noise of the run times")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=41_000)
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--resume-questions", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bench_scoring(args.answers)
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_tiny_vlm(Path(tmp) / "tiny-vlm")
        params = p.HFVisionLanguageModelParams(model_dir=str(directory), max_new_tokens=8)
        model = HFVisionLanguageModel(params, CTX)
        bench_generation(model, args.questions)
        bench_resume(args.resume_questions, args.repeats, directory, Path(tmp))


if __name__ == "__main__":
    main()
