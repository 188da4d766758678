"""Per-item scoring shared by the CARES evaluators (plain Python, no torch).

:func:`closed_item` applies the factuality rules of spec §3.2 to one answer: the yes/no parser
(``legacy`` = ``eval_yesno.py``, or ``normalized``) or the difflib option matcher
(``eval_multichoice.py``). The evaluators and the benchmark call it.
"""

from __future__ import annotations

from dataclasses import dataclass

from asklepios_cares._text import legacy_yes_no, most_similar_index, normalized_yes_no

__all__ = ["QTYPES", "ClosedResult", "closed_item"]

QTYPES = ("yes_no", "mcq", "open")


@dataclass(frozen=True)
class ClosedResult:
    """The score of one closed answer.

    Attributes:
        correct: whether the answer counts as correct.
        parsed: whether the answer was read at all (a yes/no token, a matching option).
        pred: the parsed answer (yes/no: 1 yes, 0 no; options: the index), -1 if unparsed.
        label: the reference the same way (-1 if it cannot be read).
    """

    correct: bool
    parsed: bool
    pred: int
    label: int


def _letter_index(options: list[str], letter: str | None) -> int | None:
    if letter is None:
        return None
    for index, option in enumerate(options):
        if option.startswith(f"{letter}:"):
            return index
    return None


def closed_item(
    qtype: str,
    answer: str,
    reference: str,
    options: list[str] | None,
    correct_letter: str | None,
    parser: str,
) -> ClosedResult | None:
    """Score one closed answer; ``None`` for open questions.

    Yes/no: the answer and the reference go through the same parser; ``normalized`` counts an
    answer without a yes/no token as unparsed and wrong. Multiple choice: the answer's option is
    the most ``SequenceMatcher``-similar one; the reference's is its letter (``normalized``) or,
    as ``eval_multichoice.py`` does, the option most similar to the reference string
    (``legacy``, where two unmatched indices — both ``None`` — count as equal).
    """
    if qtype == "yes_no":
        if parser == "legacy":
            pred, label = legacy_yes_no(answer), legacy_yes_no(reference)
            return ClosedResult(pred == label, True, pred, label)
        read, truth = normalized_yes_no(answer), normalized_yes_no(reference)
        pred_code = -1 if read is None else read
        label_code = -1 if truth is None else truth
        return ClosedResult(
            read is not None and read == truth, read is not None, pred_code, label_code
        )
    if qtype == "mcq" and options:
        matched = most_similar_index(options, answer)
        if parser == "legacy":
            target = most_similar_index(options, reference)
        else:
            target = _letter_index(options, correct_letter)
            if target is None:
                target = most_similar_index(options, reference)
        pred_code = -1 if matched is None else matched
        label_code = -1 if target is None else target
        if parser == "legacy":
            return ClosedResult(matched == target, matched is not None, pred_code, label_code)
        return ClosedResult(
            matched is not None and matched == target, matched is not None, pred_code, label_code
        )
    return None
