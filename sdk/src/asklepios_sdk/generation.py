"""Generative models under test: the question contract, conversations and text evaluators.

A model under test that *generates text* (a vision-language model answering questions about an
image) is a :class:`GenerativeBackbone`: ``generate(images, messages) -> list[str]``, one answer
per conversation, batched. The engine evaluates it like any model (sharded across ranks, metrics
synced), except that its outputs are text and that every answer is cached in the run directory,
so an interrupted evaluation resumes without generating a finished answer again.

A **sample** (one question) is a dict with

- ``qid``: str, the question's id, unique within its split (answers are cached under it);
- ``image``: ``[C, H, W]`` uint8 RGB tensor, or ``None`` for a text-only question;
- ``text``: str, the first user turn;
- ``followups`` (optional): list of str, further user turns asked in the same conversation, each
  after the model's answer to the previous one ("Are you sure ...?");
- ``system`` (optional): str, a system message;
- ``index``: int, the item's position in its split (results gathered across ranks keep that
  order, so 2 ranks give exactly the one-process result);
- anything else (reference answers, options, demographics): plain values, kept as lists.

The **batch** :class:`GenerationCollate` makes from ``B`` samples keeps every key as a list of
``B`` values (``image`` a list of tensors or ``None``), except ``index``: ``[B]`` int64.

A **conversation** is a list of :data:`Message` dicts (``{"role": "system" | "user" |
"assistant", "content": str}``); the image belongs to the first user turn. The model's
**outputs** are ``{"text": [B answers to the last turn], "turns": [B lists of the answers to
every user turn]}``; :func:`answer_conversations` asks the turns one after another and is what
``GenerativeBackbone.forward`` and the engine's cached evaluation call.

Evaluators of answers subclass :class:`TextEvaluator`: they score each item in ``update`` (a
string rule, a judge) and keep per-item numbers, gathered across ranks by ``index``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from asklepios_sdk.components import Backbone, Batch
from asklepios_sdk.context import BuildContext
from asklepios_sdk.errors import ComponentError
from asklepios_sdk.sequences import SequenceEvaluator

__all__ = [
    "GenerationCollate",
    "GenerativeBackbone",
    "Message",
    "ModelFingerprint",
    "TextEvaluator",
    "answer_conversations",
    "conversation",
    "example_generation_batch",
    "image_digest",
    "user_turns",
]

Message = dict[str, str]
"""One turn of a conversation: ``{"role": "system" | "user" | "assistant", "content": str}``."""

Lookup = Callable[[int, list[Message]], "str | None"]
Store = Callable[[list[tuple[int, list[Message], str]]], None]


@dataclass(frozen=True)
class ModelFingerprint:
    """What makes two models give the same answers: identity, weights and decoding settings.

    Attributes:
        model_id: a readable name (a model directory's name, ``stub-v1``).
        weights_sha256: sha256 of the weights (of every weight file, in name order), or of the
            rules of a model without weights.
        settings: decoding settings that change answers (``max_new_tokens``, sampling, seed).
    """

    model_id: str
    weights_sha256: str
    settings: Mapping[str, Any]

    @property
    def key(self) -> str:
        """Return one string that changes whenever any field does."""
        settings = json.dumps(dict(self.settings), sort_keys=True, default=str)
        return f"{self.model_id}@{self.weights_sha256}:{settings}"


def image_digest(image: Tensor | None) -> str:
    """Return the sha256 of an image's dtype, shape and pixels (``"none"`` without image)."""
    if image is None:
        return "none"
    array = image.detach().cpu().contiguous()
    digest = hashlib.sha256(f"{array.dtype}{tuple(array.shape)}".encode())
    digest.update(array.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def user_turns(batch: Mapping[str, Any], position: int) -> list[str]:
    """Return the user turns of item ``position``: ``text`` and then its ``followups``."""
    followups = batch.get("followups")
    extra = list(followups[position]) if followups is not None else []
    return [str(batch["text"][position]), *(str(turn) for turn in extra)]


def conversation(system: str | None, turns: Sequence[str], answers: Sequence[str]) -> list[Message]:
    """Return the messages that ask the last of ``turns`` after ``answers`` to the others.

    Args:
        system: an optional system message.
        turns: the user turns up to the one being asked.
        answers: the model's answers to every turn but the last (``len(turns) - 1``).
    """
    if len(answers) != len(turns) - 1:
        raise ComponentError(
            f"conversation: {len(turns)} user turns need {len(turns) - 1} answers, got "
            f"{len(answers)}"
        )
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    for index, turn in enumerate(turns):
        messages.append({"role": "user", "content": turn})
        if index < len(answers):
            messages.append({"role": "assistant", "content": answers[index]})
    return messages


def answer_conversations(
    generate: Callable[[list[Tensor | None], list[list[Message]]], list[str]],
    batch: Mapping[str, Any],
    lookup: Lookup | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """Answer every item's user turns in order, one batched ``generate`` call per turn.

    Turn ``t`` of every item that has one is asked together, after the item's answers to turns
    ``0..t-1``. ``lookup(position, messages)`` may return a known answer (the engine's answer
    cache), which is then not generated; ``store([(position, messages, answer), ...])`` receives
    the answers of each ``generate`` call right after it returns (the cache writes them at once).

    Returns:
        ``{"text": [answer to each item's last turn], "turns": [each item's answers]}``.
    """
    size = len(batch["text"])
    images = batch.get("image")
    systems = batch.get("system")
    turns = [user_turns(batch, i) for i in range(size)]
    answers: list[list[str]] = [[] for _ in range(size)]
    for step in range(max((len(t) for t in turns), default=0)):
        asked = [i for i in range(size) if len(turns[i]) > step]
        messages = {
            i: conversation(
                systems[i] if systems is not None else None, turns[i][: step + 1], answers[i]
            )
            for i in asked
        }
        missing = []
        for i in asked:
            known = lookup(i, messages[i]) if lookup is not None else None
            if known is None:
                missing.append(i)
            else:
                answers[i].append(known)
        if not missing:
            continue
        pictures = [images[i] if images is not None else None for i in missing]
        generated = generate(pictures, [messages[i] for i in missing])
        if len(generated) != len(missing):
            raise ComponentError(
                f"generate returned {len(generated)} answers for {len(missing)} conversations"
            )
        for i, answer in zip(missing, generated, strict=True):
            if not isinstance(answer, str):
                raise ComponentError(f"generate returned {type(answer).__name__}, not str")
            answers[i].append(answer)
        if store is not None:
            store([(i, messages[i], answers[i][-1]) for i in missing])
    return {"text": [a[-1] for a in answers], "turns": answers}


@dataclass(frozen=True)
class GenerationCollate:
    """Collate question samples: every key as a list, ``index`` as an int64 tensor.

    Attributes:
        required: keys every sample must have.
    """

    required: tuple[str, ...] = ("qid", "text", "index")

    def __call__(self, samples: Sequence[Mapping[str, Any]]) -> Batch:
        """Return the batch of ``samples`` (see the module docstring for its keys)."""
        if not samples:
            raise ComponentError("GenerationCollate: empty batch")
        keys = set(samples[0])
        for i, sample in enumerate(samples):
            missing = [k for k in self.required if k not in sample]
            if missing:
                raise ComponentError(
                    f"GenerationCollate: sample {i} has no {missing} (keys {sorted(sample)}); a "
                    "question sample carries 'qid', 'text' and 'index'"
                )
            if set(sample) != keys:
                raise ComponentError(
                    f"GenerationCollate: sample {i} has keys {sorted(sample)}, sample 0 has "
                    f"{sorted(keys)}; every sample of a split needs the same keys"
                )
        batch: Batch = {key: [s[key] for s in samples] for key in sorted(keys)}
        batch["index"] = torch.as_tensor([int(s["index"]) for s in samples], dtype=torch.int64)
        return batch


def example_generation_batch(ctx: BuildContext, batch_size: int = 4, seed: int = 0) -> Batch:
    """Make a tiny question batch following the contract (for tests and the kit).

    Images are ``ctx.data.image_size`` (else 16 x 16) random uint8 RGB; the last item has a
    follow-up turn, so multi-turn conversations are exercised too.
    """
    gen = torch.Generator().manual_seed(seed)
    height, width = ctx.data.image_size or (16, 16)
    samples = []
    for index in range(batch_size):
        samples.append(
            {
                "qid": f"q{index}",
                "image": torch.randint(
                    0, 256, (3, height, width), generator=gen, dtype=torch.uint8
                ),
                "text": f"Is there an abnormality in image {index}? Answer yes or no.",
                "followups": ["Are you sure?"] if index == batch_size - 1 else [],
                "index": index,
            }
        )
    return GenerationCollate()(samples)


class GenerativeBackbone(Backbone):
    """A model under test that answers conversations about images with text.

    Subclasses implement :meth:`generate` (batched: one answer per conversation) and
    :meth:`fingerprint` (what identifies its answers, for the cache). ``forward(batch)`` answers
    a question batch turn by turn (:func:`answer_conversations`), so the model also works where
    a plain model is called; the engine calls :meth:`generate` through its answer cache instead.
    """

    generates_text: ClassVar[bool] = True

    def generate(  # pragma: no cover - abstract
        self, images: Sequence[Tensor | None], messages: Sequence[Sequence[Message]]
    ) -> list[str]:
        """Return one answer to the last user turn of each conversation, with its image."""
        raise ComponentError(f"{type(self).__name__} does not implement generate(images, messages)")

    def fingerprint(self) -> ModelFingerprint:  # pragma: no cover - abstract
        """Return the model id, weights sha256 and decoding settings its answers depend on."""
        raise ComponentError(f"{type(self).__name__} does not implement fingerprint()")

    def forward(self, batch: Batch) -> dict[str, Any]:
        return answer_conversations(self._generate_list, batch)

    def _generate_list(
        self, images: list[Tensor | None], messages: list[list[Message]]
    ) -> list[str]:
        return list(self.generate(images, messages))

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return a tiny question batch (the conformance kit uses it)."""
        return example_generation_batch(ctx, batch_size)


class TextEvaluator(SequenceEvaluator):
    """An evaluator of generated answers: ``update(outputs, batch)`` with text outputs.

    ``outputs["text"]`` holds each item's answer to its last turn and ``outputs["turns"]`` its
    answers to every turn; ``batch`` is the question batch (references, options, ``index``).
    Score each item in ``update`` and keep the numbers as per-item rows: declare columns in
    ``__init__`` with :meth:`add_column` (a scalar, or ``width`` values, per item), add each
    batch's rows with :meth:`append_rows`, and read every rank's rows in ``compute`` with
    :meth:`rows`, in ``index`` order, so 2 ranks give exactly the one-process result. Columns
    are ``cat`` states filled one tensor per batch, which keeps tens of thousands of answers
    cheap; results of any length per item use the item states of
    :class:`~asklepios_sdk.sequences.SequenceEvaluator` instead.
    """

    example_answers: ClassVar[tuple[str, ...]] = ("Yes.", "No, it is not.", "Sorry, I cannot.")
    row_index: list[Tensor]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._columns: dict[str, tuple[torch.dtype, int | None]] = {}
        self.add_state("row_index", default=[], dist_reduce_fx="cat")

    def add_column(
        self, name: str, dtype: torch.dtype = torch.float64, width: int | None = None
    ) -> None:
        """Declare column ``name``: one value per item, or ``width`` values when set."""
        if name in self._columns:
            raise ComponentError(f"{type(self).__name__}: column {name!r} declared twice")
        self._columns[name] = (dtype, width)
        self.add_state(f"column_{name}", default=[], dist_reduce_fx="cat")

    def append_rows(self, index: Tensor, **columns: Any) -> None:
        """Add one batch of rows: ``index`` ``[B]`` and, per column, ``B`` values."""
        index = torch.as_tensor(index).reshape(-1).to(device=self.device, dtype=torch.int64)
        if set(columns) != set(self._columns):
            raise ComponentError(
                f"{type(self).__name__}.append_rows: got columns {sorted(columns)}, declared "
                f"{sorted(self._columns)}"
            )
        for name, values in columns.items():
            dtype, width = self._columns[name]
            tensor = torch.as_tensor(values, dtype=dtype).to(self.device)
            tensor = tensor.reshape(-1, width) if width is not None else tensor.reshape(-1)
            if tensor.shape[0] != index.numel():
                raise ComponentError(
                    f"{type(self).__name__}.append_rows: {tensor.shape[0]} values of {name!r} "
                    f"for {index.numel()} items"
                )
            getattr(self, f"column_{name}").append(tensor)
        self.row_index.append(index)

    def sync(self, *args: Any, **kwargs: Any) -> None:
        """Sync across ranks; a rank without rows sends typed empty tensors."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            empties = {"row_index": torch.empty(0, dtype=torch.int64)}
            for name, (dtype, width) in self._columns.items():
                shape = (0, width) if width is not None else (0,)
                empties[f"column_{name}"] = torch.empty(shape, dtype=dtype)
            for state, empty in empties.items():
                value = getattr(self, state)
                if isinstance(value, list) and not value:
                    value.append(empty.to(self.device))
        super().sync(*args, **kwargs)

    def rows(self) -> tuple[Tensor, dict[str, Tensor]]:
        """Return every rank's rows (once synced), ordered by ``index``: ``(index, columns)``."""
        index = _cat_state(self.row_index, torch.int64, None).cpu()
        order = torch.argsort(index, stable=True)
        columns = {
            name: _cat_state(getattr(self, f"column_{name}"), dtype, width).cpu()[order]
            for name, (dtype, width) in self._columns.items()
        }
        return index[order], columns

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Any], Batch]:
        """Return text outputs (cycling :attr:`example_answers`) and a question batch."""
        batch = example_generation_batch(ctx, batch_size)
        answers = [self.example_answers[i % len(self.example_answers)] for i in range(batch_size)]
        turns = [[a] * (1 + len(f)) for a, f in zip(answers, batch["followups"], strict=True)]
        return {"text": answers, "turns": turns}, batch


def _cat_state(value: Tensor | list[Tensor], dtype: torch.dtype, width: int | None) -> Tensor:
    if isinstance(value, Tensor):
        return value.to(dtype)
    if not value:
        return torch.empty((0, width) if width is not None else (0,), dtype=dtype)
    return torch.cat(value).to(dtype)
