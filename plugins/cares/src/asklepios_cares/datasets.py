"""Datasets of CARES questions: a question file (``cares.jsonl``) and the bundled fixture.

Each question becomes a sample of the generation contract (``asklepios_sdk.generation``):
``qid``, ``image`` (``[3, H, W]`` uint8, read when the sample is), ``text`` (the prompt),
``followups`` (empty until a task prompt adds one), ``index``, and the record's reference,
options, correct letter, question type, demographics and source. CARES has no training
questions: the splits are ``test`` (every question) and an empty ``train``, so an experiment
over it only evaluates (``train.epochs: 0``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset
from asklepios_sdk.generation import GenerationCollate

from asklepios_cares.params import CaresFixtureParams, CaresJsonlParams
from asklepios_cares.records import CaresRecord, read_demographics, read_records

__all__ = ["CaresFixture", "CaresJsonl", "QuestionSplit", "load_image"]


def load_image(path: Path) -> torch.Tensor:
    """Read an image file as a ``[3, H, W]`` uint8 RGB tensor."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except OSError as err:
        raise ComponentError(f"cannot read image {path}: {err}") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class QuestionSplit(torch.utils.data.Dataset):
    """CARES records as question samples; images are read per sample."""

    collate_fn = GenerationCollate()

    def __init__(self, records: list[CaresRecord], image_root: Path) -> None:
        self.records = records
        self.image_root = image_root

    def __len__(self) -> int:
        return len(self.records)

    def path(self, index: int) -> Path:
        """Return the image file of question ``index``."""
        return self.image_root / self.records[index].image

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image = load_image(self.path(index)) if record.image else None
        return {
            "qid": record.qid,
            "image": image,
            "text": record.prompt,
            "followups": [],
            "index": index,
            "reference": record.reference,
            "options": record.options,
            "correct_letter": record.correct_letter,
            "qtype": record.qtype,
            "age": record.age,
            "gender": record.gender,
            "race": record.race,
            "source": record.source,
        }


class CaresJsonl(Dataset):
    """Read a CARES question file (IU-Xray, FairVLMed, HAM10000, OL3I or generic schema).

    The schema adapters of spec §2 unify the fields; options are parsed without breaking at the
    commas inside them; questions are yes/no, multiple choice or open; ``age``/``gender`` come
    from the file, and a ``demographics_file`` (CSV or JSONL with a ``key`` column) fills what
    the file lacks (race, or FairVLMed's demographics, whose CARES source is NOT FOUND).
    """

    split_names = ("test",)

    def __init__(self, params: CaresJsonlParams, ctx: BuildContext) -> None:
        if not params.file:
            raise ComponentError(
                "cares.jsonl: 'file' is empty; give a CARES question file, e.g. "
                "file: data/IU-Xray/iuxray_factuality.jsonl (or use cares.fixture for the demo)"
            )
        path = Path(params.file).expanduser()
        if not path.is_file():
            raise ComponentError(f"cares.jsonl: question file {path} does not exist")
        demographics = None
        if params.demographics_file:
            table = Path(params.demographics_file).expanduser()
            if not table.is_file():
                raise ComponentError(f"cares.jsonl: demographics_file {table} does not exist")
            demographics = read_demographics(table)
        records = read_records(path, params.source, demographics, params.join_on, params.limit)
        root = Path(params.image_root).expanduser() if params.image_root else path.parent
        self.test = QuestionSplit(records, root)
        self.train = QuestionSplit([], root)

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name == "test":
            return self.test
        if name == "train":
            return self.train  # no training questions: evaluation only
        raise ComponentError(f"cares.jsonl has splits {self.split_names}, not {name!r}")

    def facts(self) -> DataFacts:
        return DataFacts(task="generation", num_samples=0)

    def files(self, name: str) -> Iterable[tuple[int, str]]:
        split = self.test if name == "test" else self.train
        return [(i, str(split.path(i))) for i, r in enumerate(split.records) if r.image]


class CaresFixture(CaresJsonl):
    """Write (once) and read the bundled demo questions of every CARES schema.

    Four small question files following the schemas of spec §2 (IU-Xray yes/no, FairVLMed
    open, HAM10000 and OL3I multiple choice) over crops of scikit-image's bundled photographs,
    and a demographics file for the FairVLMed rows; for demos and tests, not a benchmark.
    """

    def __init__(self, params: CaresFixtureParams, ctx: BuildContext) -> None:
        from asklepios_cares.fixture import DEFAULT_DIRECTORY, write_fixture

        directory = Path(params.directory or DEFAULT_DIRECTORY).expanduser()
        files = write_fixture(directory, params.per_source)
        demographics = read_demographics(files["demographics"])
        records: list[CaresRecord] = []
        for source in ("iuxray", "fairvlmed", "ham10000", "ol3i"):
            for record in read_records(files[source], source, demographics):
                folder = files[source].parent.name
                records.append(replace(record, image=f"{folder}/{record.image}"))
        root = files["demographics"].parent.parent
        self.test = QuestionSplit(records, root)
        self.train = QuestionSplit([], root)
