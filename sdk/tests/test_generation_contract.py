"""The generation contract: question batches, multi-turn conversations, text evaluators, kit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from asklepios_sdk import BuildContext, ComponentError, EmptyParams
from asklepios_sdk.generation import (
    GenerationCollate,
    GenerativeBackbone,
    Message,
    ModelFingerprint,
    TextEvaluator,
    answer_conversations,
    conversation,
    example_generation_batch,
    image_digest,
)
from asklepios_sdk.sequences import batch_index
from asklepios_sdk.testing import Conformance, check_plugin
from fake_plugins import plugin_with
from torch import Tensor

CTX = BuildContext()


class Parrot(GenerativeBackbone):
    """Repeat the last user turn with its turn number; count calls."""

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        super().__init__()
        self.calls: list[int] = []

    def fingerprint(self) -> ModelFingerprint:
        return ModelFingerprint("parrot", "0" * 64, {})

    def generate(
        self, images: Sequence[Tensor | None], messages: Sequence[Sequence[Message]]
    ) -> list[str]:
        self.calls.append(len(messages))
        users = [[m["content"] for m in c if m["role"] == "user"] for c in messages]
        return [f"{u[-1]}#{len(u)}" for u in users]


class Lengths(TextEvaluator):
    """Mean answer length and the share of items with a follow-up."""

    name = "lengths"

    def __init__(self, params: Any = None, ctx: Any = None) -> None:
        super().__init__()
        self.add_column("length", torch.float64)
        self.add_column("turns", torch.int64)
        self.add_column("code", torch.uint8, width=3)

    def update(self, outputs: dict[str, Any], batch: dict[str, Any]) -> None:
        self.append_rows(
            batch_index(batch, self.name),
            length=[len(t) for t in outputs["text"]],
            turns=[len(t) for t in outputs["turns"]],
            code=[[len(t) % 7, 1, 2] for t in outputs["text"]],
        )

    def compute(self) -> dict[str, float]:
        index, rows = self.rows()
        assert index.tolist() == sorted(index.tolist())
        return {
            "length": float(rows["length"].mean()),
            "follow_ups": float((rows["turns"] > 1).double().mean()),
            "code": float(rows["code"][:, 0].double().sum()),
        }


def test_the_collate_keeps_lists_and_makes_the_index_a_tensor() -> None:
    batch = example_generation_batch(CTX, 3)
    assert batch["qid"] == ["q0", "q1", "q2"] and batch["index"].dtype == torch.int64
    assert len(batch["image"]) == 3 and batch["followups"][-1] == ["Are you sure?"]
    with pytest.raises(ComponentError, match="has no \\['qid'\\]"):
        GenerationCollate()([{"text": "x", "index": 0}])
    with pytest.raises(ComponentError, match="same keys"):
        GenerationCollate()(
            [{"qid": "a", "text": "x", "index": 0}, {"qid": "b", "text": "y", "index": 1, "z": 1}]
        )


def test_conversations_ask_each_turn_after_the_previous_answer() -> None:
    messages = conversation("Be brief.", ["Q?", "Sure?"], ["yes"])
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q?"},
        {"role": "assistant", "content": "yes"},
        {"role": "user", "content": "Sure?"},
    ]
    with pytest.raises(ComponentError, match="need 1 answers"):
        conversation(None, ["Q?", "Sure?"], [])


def test_answer_conversations_batches_each_turn_and_uses_lookup_and_store() -> None:
    model = Parrot()
    batch = example_generation_batch(CTX, 4)
    out = model(batch)
    assert model.calls == [4, 1]  # every first turn in one call, then the one follow-up
    assert out["turns"][3] == [batch["text"][3] + "#1", "Are you sure?#2"]
    assert out["text"] == [t[-1] for t in out["turns"]]
    stored: list[tuple[int, list[Message], str]] = []
    known = {0: "cached"}
    again = answer_conversations(
        model.generate,  # type: ignore[arg-type]
        batch,
        lookup=lambda i, m: known.get(i) if len(m) == 1 else None,
        store=stored.extend,
    )
    assert again["text"][0] == "cached" and model.calls[-2:] == [3, 1]
    assert [i for i, _, _ in stored] == [1, 2, 3, 3]


def test_image_digest_follows_pixels_shape_and_dtype() -> None:
    image = torch.zeros(3, 4, 4, dtype=torch.uint8)
    assert image_digest(image) == image_digest(image.clone()) and image_digest(None) == "none"
    assert image_digest(image) != image_digest(image.float())
    assert image_digest(image) != image_digest(image.reshape(3, 2, 8))
    brighter = image.clone()
    brighter[0, 0, 0] = 1
    assert image_digest(image) != image_digest(brighter)


def test_text_evaluator_rows_come_back_in_index_order() -> None:
    evaluator = Lengths()
    outputs, batch = evaluator.example_inputs(CTX, 6)
    order = [5, 3, 1, 0, 2, 4]
    shuffled = {
        "text": [outputs["text"][i] for i in order],
        "turns": [outputs["turns"][i] for i in order],
    }
    reordered = {**batch, "index": batch["index"][order]}
    evaluator.update(shuffled, reordered)
    index, rows = evaluator.rows()
    assert index.tolist() == list(range(6))
    assert rows["length"].tolist() == [float(len(t)) for t in outputs["text"]]
    assert rows["code"].shape == (6, 3)
    with pytest.raises(ComponentError, match="got columns"):
        evaluator.append_rows(batch["index"], length=[1] * 6)
    with pytest.raises(ComponentError, match="5 values of 'length' for 6 items"):
        evaluator.append_rows(batch["index"], length=[1] * 5, turns=[1] * 6, code=[[0] * 3] * 6)


def test_the_kit_checks_generative_backbones_and_text_evaluators() -> None:
    plugin = plugin_with(
        {
            "backbone": [("parrot", Parrot, EmptyParams)],
            "evaluator": [("lengths", Lengths, EmptyParams)],
        }
    )
    report = check_plugin(Conformance(plugin, plugin_id="fake"))
    assert report.failures == [], [o.message for o in report.failures]
    passed = {(o.check.component, o.check.rule) for o in report.outcomes if o.status == "passed"}
    assert ("fake.parrot", "forward-backward") in passed
    assert ("fake.lengths", "evaluator-keys") in passed
