"""``cares.stub_vlm``: a deterministic rule-based model under test, for tests and demos.

It is **not** a model: it answers from fixed rules and a hash of the conversation and image,
so runs are reproducible, answers vary across questions, and every scorer sees yes/no answers,
option letters, refusals, doubt and free text. Use it to exercise the pipeline, never to report
numbers.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence

from asklepios_sdk import BuildContext
from asklepios_sdk.generation import GenerativeBackbone, Message, ModelFingerprint, image_digest
from torch import Tensor

from asklepios_cares._text import parse_options
from asklepios_cares.params import StubVisionLanguageModelParams

__all__ = ["StubVisionLanguageModel"]

RULES_VERSION = "stub-vlm-1"


class StubVisionLanguageModel(GenerativeBackbone):
    """Answer with fixed rules and a hash of the question (tests and demos, not a model).

    Rules, on the last user turn: a prompt with a ``refuse_keywords`` phrase gets a refusal; a
    follow-up "Are you sure" gets doubt for ``unsure_share`` of questions, else confidence; a
    ``[yes, no]`` question gets "Yes." or "No, there is no abnormality."; a question with
    ``A:…, B:…`` options gets one option; anything else a one-sentence description. Each
    ``generate`` call waits ``latency_s`` first (not part of the fingerprint: no answer changes).
    """

    def __init__(self, params: StubVisionLanguageModelParams, ctx: BuildContext) -> None:
        super().__init__()
        self.refuse = tuple(k.lower() for k in params.refuse_keywords)
        self.unsure_share = params.unsure_share
        self.seed = params.seed
        self.latency_s = params.latency_s

    def fingerprint(self) -> ModelFingerprint:
        rules = json.dumps(
            [RULES_VERSION, self.refuse, self.unsure_share, self.seed], sort_keys=True
        )
        digest = hashlib.sha256(rules.encode("utf-8")).hexdigest()
        return ModelFingerprint(RULES_VERSION, digest, {"decoding": "rules"})

    def _draw(self, *parts: str) -> float:
        """Return a number in [0, 1) fixed by ``parts`` and the seed."""
        text = "\x1f".join([str(self.seed), *parts]).encode("utf-8")
        return int.from_bytes(hashlib.sha256(text).digest()[:8], "big") / 2.0**64

    def _answer(self, image: Tensor | None, conversation: Sequence[Message]) -> str:
        users = [m["content"] for m in conversation if m["role"] == "user"]
        question, last = users[0], users[-1]
        picture = image_digest(image)[:16]
        lowered = last.lower()
        if any(keyword in lowered for keyword in self.refuse):
            return "Sorry, I cannot answer that question."
        if len(users) > 1:
            if self._draw("sure", question, picture) < self.unsure_share:
                return "I am not sure; the image is ambiguous."
            return "Yes, I am confident in my answer."
        draw = self._draw("answer", question, picture)
        if "[yes, no]" in question and "Options:" not in question:
            return "Yes." if draw < 0.5 else "No, there is no abnormality."
        if "Options:" in question:
            listed = question.split("Options:", 1)[1].split(". Please", 1)[0].strip()
            options = parse_options(listed)
            if options:
                return f"The answer is {options[int(draw * len(options))]}"
        if "sure" in lowered and draw < self.unsure_share:
            return "I am uncertain about this finding."
        return "The image shows normal anatomy without acute findings."

    def generate(
        self, images: Sequence[Tensor | None], messages: Sequence[Sequence[Message]]
    ) -> list[str]:
        """Return one rule-based answer per conversation."""
        if self.latency_s:
            time.sleep(self.latency_s)
        return [self._answer(i, m) for i, m in zip(images, messages, strict=True)]
