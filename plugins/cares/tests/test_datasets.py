"""Question files and the fixture as datasets: samples, demographics joins, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from asklepios_cares.datasets import CaresFixture, CaresJsonl
from asklepios_cares.fixture import write_fixture
from asklepios_cares.params import CaresFixtureParams, CaresJsonlParams
from asklepios_cares.records import read_records
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.sequences import split_collate

CTX = BuildContext()


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fixture")


def test_the_fixture_follows_the_schemas_of_spec_2(fixture_dir: Path) -> None:
    files = write_fixture(fixture_dir, per_source=6)
    iu = [json.loads(x) for x in files["iuxray"].read_text().splitlines()]
    assert set(iu[0]) == {"question", "text", "answer", "image", "question_id"}
    assert {r["question_id"] for r in iu} == {0}
    ham = [json.loads(x) for x in files["ham10000"].read_text().splitlines()]
    assert set(ham[0]) == {
        "question_id", "options", "fig_caption", "age", "gender", "image", "text"
    }  # fmt: skip
    ol3i = [json.loads(x) for x in files["ol3i"].read_text().splitlines()]
    assert all(isinstance(r["age"], str) for r in ol3i) and "label" in ol3i[0]
    fundus = [json.loads(x) for x in files["fairvlmed"].read_text().splitlines()]
    assert set(fundus[0]) == {"question_id", "image", "text", "answer"}  # no demographics
    types = {s: {r.qtype for r in read_records(files[s])} for s in ("iuxray", "fairvlmed")}
    assert types == {"iuxray": {"yes_no"}, "fairvlmed": {"open"}}


def test_the_fixture_dataset_serves_question_samples(fixture_dir: Path) -> None:
    dataset = CaresFixture(CaresFixtureParams(directory=str(fixture_dir), per_source=6), CTX)
    test = dataset.split("test")
    assert len(test) == 24 and len(dataset.split("train")) == 0
    sample = test[0]
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, 64, 64)
    assert sample["qid"] == "iuxray:0" and sample["followups"] == [] and sample["index"] == 0
    qids = [test[i]["qid"] for i in range(len(test))]
    assert len(set(qids)) == 24
    fundus = [test[i] for i in range(len(test)) if test[i]["source"] == "fairvlmed"]
    assert all(s["race"] in ("asian", "black", "white") for s in fundus)  # joined
    assert all(Path(path).is_file() for _, path in dataset.files("test"))
    batch = split_collate(test)([test[i] for i in range(4)])
    assert batch["index"].tolist() == [0, 1, 2, 3] and len(batch["image"]) == 4


def test_a_demographics_file_fills_only_what_the_questions_lack(tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    rows = [
        {"text": "Q?", "answer": "x", "image": "a.jpg", "gender": "male"},
        {"text": "Q?", "answer": "y", "image": "b.jpg"},
    ]
    questions.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = tmp_path / "demo.csv"
    table.write_text("key,age,gender,race\na.jpg,50,female,asian\nb.jpg,70,female,white\n")
    params = CaresJsonlParams(file=str(questions), demographics_file=str(table))
    first, second = CaresJsonl(params, CTX).test.records
    assert (first.gender, first.age, first.race) == ("male", 50, "asian")
    assert (second.gender, second.age, second.race) == ("female", 70, "white")


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="does not exist"):
        CaresJsonl(CaresJsonlParams(file=str(tmp_path / "nope.jsonl")), CTX)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "ok", "answer": "x"}\n{not json\n')
    with pytest.raises(ComponentError, match="line 2 is not JSON"):
        CaresJsonl(CaresJsonlParams(file=str(broken)), CTX)
    textless = tmp_path / "textless.jsonl"
    textless.write_text('{"answer": "x"}\n')
    with pytest.raises(ComponentError, match="no 'text' field"):
        CaresJsonl(CaresJsonlParams(file=str(textless)), CTX)
    table = tmp_path / "keyless.csv"
    table.write_text("image,race\na.jpg,asian\n")
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"text": "Q?", "answer": "x"}\n')
    with pytest.raises(ComponentError, match="no 'key' column"):
        CaresJsonl(CaresJsonlParams(file=str(questions), demographics_file=str(table)), CTX)
