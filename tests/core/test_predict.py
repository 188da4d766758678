"""Predict with a finished run: own split, dataset config, CSV, folder, tensors, CLI, 2 ranks."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _api_helpers import builtin_host, tiny_run
from asklepios.api import Run
from asklepios.inference import InferenceError, Predictions

pytestmark = pytest.mark.slow  # every test needs the tiny trained run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return Run.open(tiny_run(tmp_path_factory), host=builtin_host())


@pytest.fixture(scope="module")
def images(tmp_path_factory, run) -> tuple[Path, list[int]]:
    """Write 7 test digits as PNG files (8-bit, as a lab's files would be)."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pngs")
    test = run.load().built.dataset.split("test")
    labels = []
    for i in range(7):
        sample = test[i]
        pixels = (sample["image"][0].numpy() * 255).round().astype(np.uint8)
        sub = folder / ("a" if i < 4 else "b")
        sub.mkdir(exist_ok=True)
        Image.fromarray(pixels, mode="L").save(sub / f"{i}.png")
        labels.append(int(sample["label"]))
    return folder, labels


def test_own_test_split_reproduces_the_run_accuracy(run):
    predictions = run.predict()
    test = run.load().built.eval_splits["test"]
    truth = [str(int(test[i]["label"])) for i in range(len(test))]
    assert len(predictions) == len(test) == 100
    accuracy = np.mean([p == t for p, t in zip(predictions.labels, truth, strict=True)])
    assert accuracy == pytest.approx(run.summary["test"]["classification/accuracy"], abs=1e-6)
    probs = predictions.probabilities
    assert probs.shape == (100, 10) and np.allclose(probs.sum(1), 1.0)


def test_tensors_get_the_eval_transforms(run):
    loaded = run.load()
    raw = loaded.built.dataset.split("test")
    images = torch.stack([raw[i]["image"] for i in range(5)])
    by_tensor = run.predict(images)
    by_split = run.predict()
    assert np.allclose(by_tensor.outputs, by_split.outputs[:5], atol=1e-6)
    one = run.predict(images[0])
    assert one.ids == ["0"] and np.allclose(one.outputs, by_split.outputs[:1], atol=1e-6)


def test_dataset_config_file(run, tmp_path):
    spec = tmp_path / "data.yaml"
    spec.write_text("type: core.digits\nimbalance_ratio: 2\ntest_per_class: 10\n")
    from_file = run.predict(spec)
    assert np.allclose(from_file.outputs, run.predict().outputs, atol=1e-6)
    section = tmp_path / "config.json"
    section.write_text(json.dumps({"data": {"dataset": {"type": "core.digits"}}}))
    assert len(run.predict(section, split="val")) == 150  # 15 per class by default
    with pytest.raises(InferenceError, match="no 'holdout' split"):
        run.predict(spec, split="holdout")


def test_folder_and_csv_read_images_like_the_run(run, images, tmp_path):
    folder, labels = images
    by_folder = run.predict(folder)
    assert by_folder.ids == [f"{'a' if i < 4 else 'b'}/{i}.png" for i in range(7)]
    manifest = tmp_path / "list.csv"
    pairs = zip(by_folder.ids, labels, strict=True)
    rows = [{"path": str(folder / i), "label": str(y)} for i, y in pairs]
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    by_csv = run.predict(manifest)
    assert np.allclose(by_csv.outputs, by_folder.outputs)
    assert by_csv.extra["label"] == [str(y) for y in labels]
    # 8-bit files differ from the float digits by rounding only
    exact = run.predict()
    assert (np.asarray(by_folder.labels) == np.asarray(exact.labels[:7])).mean() >= 6 / 7


def test_csv_without_path_column_says_which_columns_it_has(run, images, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.png,1\n")
    with pytest.raises(InferenceError, match=r"no column 'path' \(it has \['file', 'label'\]\)"):
        run.predict(bad)
    # the advice works: --path-column names the image column
    folder, labels = images
    named = tmp_path / "named.csv"
    named.write_text("image,label\n" + f"{folder / 'a' / '0.png'},{labels[0]}\n")
    out = tmp_path / "named_pred.csv"
    result = _cli(["predict", str(run.path), "--data", str(named), "--path-column", "image",
                   "-o", str(out)])  # fmt: skip
    assert result.returncode == 0, result.stderr
    (row,) = list(csv.DictReader(out.open()))
    assert row["id"] == str(folder / "a" / "0.png") and row["label"] == str(labels[0])


def test_the_own_split_of_a_manifest_run_is_listed_by_file_with_its_label(tmp_path):
    """As PanDerm's per-image CSV: file, true label, prediction, probabilities."""
    from types import SimpleNamespace

    from asklepios.builtins.datasets import CsvDataset
    from asklepios.builtins.params import CsvDatasetParams
    from asklepios.inference import as_items
    from asklepios_sdk import BuildContext
    from PIL import Image

    rows = ["path,label,split"]
    for i in range(6):
        Image.fromarray(np.full((4, 4), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{'benign' if i % 2 else 'melanoma'},{'test' if i > 2 else 'train'}")
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    dataset = CsvDataset(
        CsvDatasetParams(path=str(tmp_path / "data.csv"), split_column="split", mode="L"),
        BuildContext(),
    )
    loaded = SimpleNamespace(
        built=SimpleNamespace(dataset=dataset, eval_splits={"test": dataset.split("test")}),
        class_names=["benign", "melanoma"],
    )
    items, extra = as_items(loaded, None, "test", None)
    assert items.ids == [str(tmp_path / f"{i}.png") for i in (3, 4, 5)]
    assert extra == {"label": ["benign", "melanoma", "benign"]}


def test_stage_and_checkpoint_choice(run):
    assert run.load().checkpoint.parent.name == "fit"  # 'check' trained 0 epochs
    assert run.load(stage="fit", checkpoint="last").checkpoint.name == "last.pt"
    with pytest.raises(InferenceError, match="no stage 'nope'; its stages: fit, check"):
        run.load(stage="nope")
    with pytest.raises(InferenceError, match=r"dataset has no 'train' split"):
        run.predict(split="train")


def test_predictions_table_for_other_tasks():
    regression = Predictions(["a", "b"], np.array([[0.5], [1.5]]), task="regression")
    assert regression.labels is None
    assert regression.columns() == {"id": ["a", "b"], "output": [0.5, 1.5]}
    multi = Predictions(["a"], np.array([[3.0, -3.0]]), "multilabel", ["x", "y"])
    assert multi.labels == ["x"]


def test_cli_writes_one_row_per_item(run, images, tmp_path):
    folder, _ = images
    out = tmp_path / "pred.csv"
    result = _cli(["predict", str(run.path), "--data", str(folder), "-o", str(out)])
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 7 and rows[0]["id"] == "a/0.png"
    assert list(rows[0]) == ["id", "prediction", *(f"prob_{d}" for d in range(10))]


def test_two_ranks_give_the_rows_of_one(run, tmp_path):
    out = tmp_path / "ddp.csv"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(29500 + os.getpid() % 1000), "-m", "asklepios",
        "--disable", "tensorboard", "--disable", "mlflow",
        "predict", str(run.path), "-o", str(out), "--device", "cpu",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    single = run.predict()
    assert [r["id"] for r in rows] == single.ids
    got = np.array([[float(r[f"prob_{d}"]) for d in range(10)] for r in rows])
    assert np.allclose(got, single.probabilities, atol=1e-6)


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ASKLEPIOS_DISABLE_PLUGINS": "tensorboard,mlflow"}
    return subprocess.run(
        [sys.executable, "-m", "asklepios", *args], capture_output=True, text=True, env=env
    )


def test_a_cross_validated_run_needs_a_fold(run):
    from asklepios.inference import load_run_model

    summary = {"folds": [{"fold": 0}, {"fold": 1}, {"fold": 2}], "stages": {}}
    with pytest.raises(InferenceError, match=r"3 folds; pick one with fold=0\.\.2"):
        load_run_model(run.path, run.config, summary, builtin_host())
