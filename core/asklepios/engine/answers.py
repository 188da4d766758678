"""The answer cache: generated answers kept in the run directory, so none is generated twice.

Evaluating a generative model (:class:`asklepios_sdk.generation.GenerativeBackbone`) can mean
tens of thousands of generations. Every answer is appended, as soon as its batch is generated,
to ``<fold dir>/answers/rank-<r>.jsonl``, one JSON line per answer::

    {"key": "<sha256>", "qid": "iuxray:17", "model": "<fingerprint>", "turn": 0,
     "answer": "No."}

``key`` is the sha256 of the question id, the model's fingerprint (model id, weights sha256 and
decoding settings: :class:`~asklepios_sdk.generation.ModelFingerprint`), the conversation sent
(every message up to the user turn asked, so a prompt transform changes it) and the image's
digest (so noised images are answered anew). A resumed evaluation, another stage over the same
questions, or a rerun with other evaluators reads the answers instead of generating them.

Crash safety: each rank appends to its own file only (no two writers share a file) and flushes
and ``fsync``\\ s after every batch. A kill can leave a partial last line; readers skip any line
that is not a complete JSON object ending in a newline, and the writer cuts such a tail off its
own file before it appends. Readers merge every rank's file, so a run resumed on another number
of ranks finds every answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asklepios_sdk.generation import (
    GenerativeBackbone,
    Message,
    answer_conversations,
    image_digest,
)

__all__ = ["AnswerCache", "CachedGeneration", "answer_key", "cached_generation"]


def answer_key(qid: str, model: str, messages: list[Message], image: str) -> str:
    """Return the cache key of one answer: sha256 over question, model, conversation, image."""
    text = json.dumps([str(qid), model, messages, image], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Return the complete records of ``path`` and the byte length they span.

    A line counts when it ends in a newline and parses as a JSON object with a ``key``; reading
    stops at the first line that does not (a write cut by a kill), which only the last can be.
    """
    records: list[dict[str, Any]] = []
    good = 0
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except ValueError:
                break
            if not isinstance(record, dict) or "key" not in record or "answer" not in record:
                break
            records.append(record)
            good += len(line)
    return records, good


class AnswerCache:
    """An append-only store of answers by key: one JSONL file per rank, merged on read.

    Args:
        directory: where the rank files live (created on the first write).
        rank: this process's rank; it writes ``rank-<rank>.jsonl`` only.
    """

    def __init__(self, directory: str | Path, rank: int = 0) -> None:
        self.directory = Path(directory)
        self.rank = rank
        self.path = self.directory / f"rank-{rank}.jsonl"
        self.answers: dict[str, str] = {}
        self._checked_tail = False
        self.reload()

    def reload(self) -> None:
        """Read every rank's file (complete lines only) into memory."""
        self.answers = {}
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob("rank-*.jsonl")):
            records, _ = _read_lines(path)
            for record in records:
                self.answers[str(record["key"])] = str(record["answer"])

    def __len__(self) -> int:
        return len(self.answers)

    def get(self, key: str) -> str | None:
        """Return the answer stored under ``key``, or ``None``."""
        return self.answers.get(key)

    def _cut_partial_tail(self) -> None:
        """Drop a partial last line (a write cut by a kill) from this rank's file, once."""
        self._checked_tail = True
        if not self.path.is_file():
            return
        _, good = _read_lines(self.path)
        if good != self.path.stat().st_size:
            with open(self.path, "r+b") as handle:
                handle.truncate(good)

    def add(self, records: list[Mapping[str, Any]]) -> None:
        """Append ``records`` (each with ``key`` and ``answer``) durably to this rank's file."""
        if not records:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self._checked_tail:
            self._cut_partial_tail()
        text = "".join(json.dumps(dict(r), ensure_ascii=False) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        for record in records:
            self.answers[str(record["key"])] = str(record["answer"])


class CachedGeneration:
    """Answer question batches with a generative model through an :class:`AnswerCache`.

    Calling it with a batch returns the model's outputs (``text`` and ``turns``), generating
    only the answers the cache lacks, in one batched ``generate`` call per turn, and appending
    each call's answers to the cache as soon as it returns. ``hits`` and ``generated`` count
    answers read and generated.
    """

    def __init__(self, model: GenerativeBackbone, cache: AnswerCache) -> None:
        self.model = model
        self.cache = cache
        self.fingerprint = model.fingerprint().key
        self.hits = 0
        self.generated = 0

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        qids = [str(q) for q in batch["qid"]]
        images = batch.get("image")
        digests = [
            image_digest(images[i] if images is not None else None) for i in range(len(qids))
        ]

        def key(position: int, messages: list[Message]) -> str:
            return answer_key(qids[position], self.fingerprint, messages, digests[position])

        def lookup(position: int, messages: list[Message]) -> str | None:
            found = self.cache.get(key(position, messages))
            self.hits += found is not None
            return found

        def generate(images: list[Any], messages: list[list[Message]]) -> list[str]:
            answers = list(self.model.generate(images, messages))
            self.generated += len(answers)
            return answers

        def store(answered: list[tuple[int, list[Message], str]]) -> None:
            self.cache.add(
                [
                    {
                        "key": key(position, messages),
                        "qid": qids[position],
                        "model": self.fingerprint,
                        "turn": sum(m["role"] == "user" for m in messages) - 1,
                        "answer": answer,
                    }
                    for position, messages, answer in answered
                ]
            )

        return answer_conversations(generate, batch, lookup, store)


def cached_generation(model: Any, answers_dir: str | Path, rank: int) -> CachedGeneration | None:
    """Return the cached generation of ``model`` when it generates text, else ``None``."""
    if not isinstance(model, GenerativeBackbone):
        return None
    return CachedGeneration(model, AnswerCache(answers_dir, rank))
