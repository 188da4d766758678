"""Components of the in-memory ``gen`` plugin: a generative model under test, end to end.

``gen.questions`` is a split of yes/no questions over tiny images (no training split: the
experiment only evaluates); ``gen.echo`` is a parameter-free generative model whose answers
follow from the conversation, that logs every answer it generates (so tests count generations)
and can SIGKILL its own process in the middle of a ``generate`` call; ``gen.answers`` scores
the answers as text.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence
from typing import Any

import torch
from asklepios_sdk import BuildContext, DataFacts, Dataset
from asklepios_sdk.generation import (
    GenerationCollate,
    GenerativeBackbone,
    Message,
    ModelFingerprint,
    TextEvaluator,
)
from asklepios_sdk.sequences import batch_index
from torch import Tensor


class QuestionSplit(torch.utils.data.Dataset):
    """``count`` questions, each over its own 8 x 8 image; every third has a follow-up."""

    collate_fn = GenerationCollate()

    def __init__(self, count: int, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.items = [
            {
                "qid": f"q{i:03d}",
                "image": torch.randint(0, 256, (3, 8, 8), generator=gen, dtype=torch.uint8),
                "text": f"Question {i}: is the lesion visible?",
                "followups": ["Are you sure?"] if i % 3 == 0 else [],
                "answer": "yes" if i % 2 == 0 else "no",
                "index": i,
            }
            for i in range(count)
        ]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return dict(self.items[index])


class Questions(Dataset):
    """Serve ``count`` test questions and an empty training split (evaluation only)."""

    split_names = ("train", "test")

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        self.splits = {"train": QuestionSplit(0, ctx.seed), "test": QuestionSplit(params.count, 1)}

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.splits[name]

    def facts(self) -> DataFacts:
        return DataFacts(task="generation", num_samples=0)


class EchoModel(GenerativeBackbone):
    """Answer from the conversation and the image; log each generated answer."""

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.log = params.log
        self.kill_after_calls = params.kill_after_calls
        self.calls = 0

    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint("echo", "0" * 64, {"style": "echo"})

    def generate(
        self, images: Sequence[Tensor | None], messages: Sequence[Sequence[Message]]
    ) -> list[str]:
        self.calls += 1
        if self.kill_after_calls and self.calls > self.kill_after_calls:
            os.kill(os.getpid(), signal.SIGKILL)  # a kill in the middle of generation
        answers = []
        for image, conversation in zip(images, messages, strict=True):
            first = conversation[0]["content"]
            number = int(first.split()[1].rstrip(":"))
            turn = sum(m["role"] == "user" for m in conversation) - 1
            brightness = int(image.float().mean()) if image is not None else 0
            word = "yes" if (number + brightness) % 3 else "no"
            answers.append(f"{word} (turn {turn})" if turn else word)
        if self.log:
            with open(self.log, "a") as handle:
                for conversation, answer in zip(messages, answers, strict=True):
                    line = {
                        "question": conversation[0]["content"],
                        "turns": len(conversation),
                        "answer": answer,
                        "call": f"{os.getpid()}-{self.calls}",
                    }
                    handle.write(json.dumps(line) + "\n")
        return answers


class AnswerScore(TextEvaluator):
    """Score answers: accuracy of the first turn and the share of follow-ups answered."""

    name = "answers"
    higher_is_better = True

    def __init__(self, params: Any, ctx: BuildContext) -> None:
        super().__init__()
        self.add_item_state("correct", torch.float64)
        self.add_item_state("turns", torch.int64)

    def update(self, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
        index = batch_index(batch, "answers")
        correct = [
            torch.tensor([float(t[0].startswith(a))])
            for t, a in zip(outputs["turns"], batch["answer"], strict=True)
        ]
        turns = [torch.tensor([len(t)]) for t in outputs["turns"]]
        self.append_items(index, correct=correct, turns=turns)

    def compute(self) -> dict[str, Any]:
        table = self.items()
        correct = torch.cat(table.values["correct"]) if len(table) else torch.zeros(0)
        turns = torch.cat(table.values["turns"]) if len(table) else torch.zeros(0)
        return {
            "accuracy": float(correct.mean()) if len(table) else float("nan"),
            "items": float(len(table)),
            "turns": float(turns.sum()),
        }
