"""CARES question files: the per-source schemas of spec §2 read into one record type.

No torch here: reading and unifying records is plain Python, so schema tests and the benchmark
run without it. :mod:`asklepios_cares.datasets` turns records into samples with images.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from asklepios_sdk import ComponentError

from asklepios_cares._text import parse_options

__all__ = ["CaresRecord", "detect_source", "read_demographics", "read_records", "unify"]

SOURCE_FILES = {
    "iuxray": "iuxray_factuality",
    "fairvlmed": "fundus_factuality",
    "ham10000": "HAM10000_factuality",
    "ol3i": "OL3I_factuality",
}


@dataclass(frozen=True)
class CaresRecord:
    """One question of any CARES source, unified.

    Attributes:
        qid: our unique id, ``<source>:<line>`` (CARES ids repeat: IU-Xray and OL3I use 0).
        image: the image path relative to the image root.
        prompt: the ``text`` sent to the model (options and ``<image>`` included).
        reference: the reference answer (HAM10000: ``fig_caption``, the correct option).
        options: the options (``"A:…"`` strings, commas kept), or ``None``.
        correct_letter: the correct option's letter, or ``None``.
        qtype: ``yes_no``, ``mcq`` or ``open``.
        age, gender, race: demographics where the source (or the join file) has them.
        source: the source schema; original_qid: the file's ``question_id``; line: 0-based.
    """

    qid: str
    image: str
    prompt: str
    reference: str
    options: list[str] | None
    correct_letter: str | None
    qtype: str
    age: int | None
    gender: str | None
    race: str | None
    source: str
    original_qid: str | None
    line: int

    def as_dict(self) -> dict[str, Any]:
        """Return the record as a plain dict."""
        return asdict(self)


def detect_source(path: Path, row: dict[str, Any]) -> str:
    """Return the schema of a file from its name, else from the fields of its first row."""
    for source, stem in SOURCE_FILES.items():
        if path.stem.lower().startswith(stem.lower()):
            return source
    if "fig_caption" in row:
        return "ham10000"
    if "label" in row and "options" in row:
        return "ol3i"
    if "question" in row and "[yes, no]" in str(row.get("text", "")):
        return "iuxray"
    return "generic"


def _age(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _letter(text: str) -> str | None:
    text = text.strip()
    if len(text) >= 2 and text[1] == ":" and text[0].isalpha() and text[0].isupper():
        return text[0]
    return None


def unify(row: dict[str, Any], source: str, line: int) -> CaresRecord:
    """Return the record of one JSONL row of ``source`` (spec §2).

    Closed vs open: closed when the row has ``options`` or its text contains ``[yes, no]``;
    multiple choice when it has options, else yes/no.
    """
    if "text" not in row:
        raise ComponentError(f"line {line + 1}: no 'text' field (fields {sorted(row)})")
    prompt = str(row["text"])
    options = parse_options(str(row["options"])) if row.get("options") else None
    if source == "ham10000":
        reference = str(row.get("fig_caption", ""))
    else:
        reference = str(row.get("answer", ""))
    letter = _letter(reference) if options else None
    if options:
        qtype = "mcq"
    elif "[yes, no]" in prompt:
        qtype = "yes_no"
    else:
        qtype = "open"
    original = row.get("question_id")
    gender = row.get("gender")
    return CaresRecord(
        qid=f"{source}:{line}",
        image=str(row.get("image", row.get("path", ""))),
        prompt=prompt,
        reference=reference,
        options=options,
        correct_letter=letter,
        qtype=qtype,
        age=_age(row.get("age")),
        gender=str(gender).lower() if gender not in (None, "") else None,
        race=str(row["race"]).lower() if row.get("race") not in (None, "") else None,
        source=source,
        original_qid=None if original is None else str(original),
        line=line,
    )


def read_demographics(path: Path) -> dict[str, dict[str, Any]]:
    """Read a demographics table (CSV or JSONL): key column ``key``, then attributes."""
    rows: list[dict[str, Any]]
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    table: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows):
        if "key" not in row:
            raise ComponentError(
                f"{path}: row {number + 1} has no 'key' column (columns {sorted(row)}); the "
                "demographics file needs 'key' and any of 'age', 'gender', 'race'"
            )
        table[str(row["key"])] = row
    return table


def read_records(
    path: Path,
    source: str = "auto",
    demographics: dict[str, dict[str, Any]] | None = None,
    join_on: str = "image",
    limit: int | None = None,
) -> list[CaresRecord]:
    """Read a CARES JSONL file into unified records, joining demographics when given."""
    records: list[CaresRecord] = []
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle):
            if limit is not None and len(records) >= limit:
                break
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError as err:
                raise ComponentError(f"{path}: line {line + 1} is not JSON ({err})") from err
            schema = detect_source(path, row) if source == "auto" else source
            if demographics is not None:
                key = str(row.get(join_on, ""))
                extra = demographics.get(key, {})
                missing = [k for k in ("age", "gender", "race") if row.get(k) in (None, "")]
                row = {**row, **{k: extra[k] for k in missing if k in extra}}
            try:
                records.append(unify(row, schema, line))
            except ComponentError as err:
                raise ComponentError(f"{path}: {err}") from err
    return records
