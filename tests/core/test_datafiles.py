"""Bad data is found before training: every bad file at once, with split and row.

Covers the pre-flight check (:mod:`asklepios.datafiles`, ``data.verify``), the core file
datasets' ``files()`` listing, and errors raised while reading a sample (main process and
DataLoader worker) shown as the same one-line located message.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import make_config, probe_host, write_config
from asklepios import datafiles
from asklepios.builtins.datasets import CsvDataset, ImageFolderDataset
from asklepios.builtins.params import CsvDatasetParams, ImageFolderDatasetParams
from asklepios.config import validate_config
from asklepios.datafiles import DataFilesError, check_file, resolve_level, verify_dataset
from asklepios.engine.run import run_experiment
from asklepios.engine.samples import KeyedSplit, SampleError
from asklepios_sdk import BuildContext


def _png(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8), value, dtype=np.uint8)
    pixels[value % 8] = 255
    Image.fromarray(pixels, mode="L").save(path)
    return path


def _manifest(root: Path, rows: int = 30) -> Path:
    """Write ``rows`` good PNGs (3 classes) and a manifest with a split column."""
    lines = []
    for i in range(rows):
        split = "test" if i % 5 == 0 else "val" if i % 5 == 1 else "train"
        _png(root / f"img{i:02d}.png", i)
        lines.append({"path": f"img{i:02d}.png", "label": str(i % 3), "split": split})
    path = root / "data.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "label", "split"])
        writer.writeheader()
        writer.writerows(lines)
    return path


def _csv(path: Path) -> CsvDataset:
    params = CsvDatasetParams(path=str(path), split_column="split", mode="L")
    return CsvDataset(params, BuildContext())


def _row(dataset: CsvDataset, split: str, name: str) -> int:
    return next(row for row, path, _ in dataset.files(split) if Path(path).name == name)


def test_every_bad_file_is_reported_at_once_with_split_and_row(tmp_path: Path) -> None:
    data = _csv(_manifest(tmp_path))
    (tmp_path / "img00.png").unlink()  # test split: missing
    (tmp_path / "img02.png").write_bytes(b"not an image at all, just text")  # train: garbage
    (tmp_path / "img06.png").write_bytes(b"")  # val: empty
    (tmp_path / "img07.png").unlink()
    (tmp_path / "img07.png").mkdir()  # train: a folder where a file should be
    header_cut = (tmp_path / "img08.png").read_bytes()[:20]  # train: cut inside the header
    (tmp_path / "img08.png").write_bytes(header_cut)
    with pytest.raises(DataFilesError) as caught:
        verify_dataset(data, "auto", "data.dataset [core.csv]")
    message = str(caught.value)
    assert message.startswith(
        "data.dataset [core.csv]: 5 of 30 files failed the pre-flight check (data.verify=headers)"
    )
    expected = {
        ("test", "img00.png", "does not exist"),
        ("train", "img02.png", "is not a readable image"),
        ("val", "img06.png", "is empty (0 bytes)"),
        ("train", "img07.png", "is not a file"),
        ("train", "img08.png", "is not a readable image"),
    }
    for split, name, why in expected:
        row = _row(data, split, name)
        line = int(name[3:5]) + 2  # the header is line 1, img00 is on line 2
        assert f"split '{split}' row {row} (data.csv line {line}): {tmp_path / name} {why}" in (
            message
        ), (name, message)
    assert "--set data.verify=none" in message


def test_manifest_lines_count_fields_that_span_lines(tmp_path: Path) -> None:
    """A quoted field with a newline moves every later row down a line: the listing follows."""
    for i in range(3):
        _png(tmp_path / f"img{i:02d}.png", i)
    (tmp_path / "data.csv").write_text(
        'path,label,split,note\nimg00.png,0,train,"two\nlines"\nimg01.png,1,train,x\n'
        "img02.png,0,test,y\n"
    )
    data = _csv(tmp_path / "data.csv")
    listed = {
        Path(path).name: where
        for split in ("train", "test")
        for _, path, where in data.files(split)
    }
    assert listed == {
        "img00.png": "data.csv line 2",
        "img01.png": "data.csv line 4",
        "img02.png": "data.csv line 5",
    }


def test_truncated_pixel_data_passes_headers_and_fails_full(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[:-2000])  # the header is whole, the pixel data is not
    images = {".png"}
    assert check_file(path, "exists", images) is None
    assert check_file(path, "headers", images) is None
    assert "is not a readable image" in (check_file(path, "full", images) or "")


def test_auto_reads_headers_up_to_the_limit_then_only_checks_existence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert resolve_level("auto", datafiles.HEADER_LIMIT) == "headers"
    assert resolve_level("auto", datafiles.HEADER_LIMIT + 1) == "exists"
    assert resolve_level("full", 10**9) == "full"
    data = _csv(_manifest(tmp_path))
    (tmp_path / "img03.png").write_bytes(b"garbage")
    with pytest.raises(DataFilesError, match=r"data\.verify=headers"):
        verify_dataset(data, "auto", "data.dataset")
    monkeypatch.setattr(datafiles, "HEADER_LIMIT", 10)
    assert verify_dataset(data, "auto", "data.dataset") == 30  # existence only: passes
    assert verify_dataset(data, "none", "data.dataset") == 0


def test_image_folders_list_their_files_and_in_memory_data_lists_none(tmp_path: Path) -> None:
    for split in ("train", "test"):
        for label in ("a", "b"):
            for i in range(2):
                _png(tmp_path / split / label / f"{i}.png", i)
    (tmp_path / "test" / "b" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    data = ImageFolderDataset(ImageFolderDatasetParams(root=str(tmp_path)), BuildContext())
    assert [p for _, p in data.files("train")] == [
        str(tmp_path / "train" / c / f"{i}.png") for c in "ab" for i in range(2)
    ]
    with pytest.raises(DataFilesError, match=r"split 'test' row 3: .*1\.png is not a readable"):
        verify_dataset(data, "headers", "data.dataset [core.image_folder]")
    host = probe_host()
    digits = host.registry.get("dataset", "core.digits").build({}, BuildContext())
    assert list(digits.files("train")) == []


def _csv_config(tmp_path: Path, manifest: Path, **loader: int) -> dict:
    config = make_config(tmp_path)
    config["data"] = {
        "dataset": {
            "type": "core.csv",
            "path": str(manifest),
            "split_column": "split",
            "mode": "L",
        },
        "loader": {"batch_size": 4, **loader},
    }
    config["model"] = {"backbone": {"type": "core.mlp", "hidden": [8]}}
    config["train"]["epochs"] = 1
    return config


def test_a_missing_test_image_stops_the_run_before_training(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "data")
    (tmp_path / "data" / "img05.png").unlink()  # a test image
    host = probe_host()
    config = validate_config(_csv_config(tmp_path, manifest), host=host)
    (tmp_path / "data" / "img10.png").unlink()  # gone after validation, found before training
    with pytest.raises(DataFilesError, match="2 of 30 files failed") as caught:
        run_experiment(config, host=host, quiet=True)
    assert "split 'test'" in str(caught.value)
    assert not (tmp_path / "runs").exists()  # no epoch ran, nothing was left behind


@pytest.mark.parametrize("workers", [0, 1])
def test_a_sample_that_fails_to_load_is_one_located_line(tmp_path: Path, workers: int) -> None:
    manifest = _manifest(tmp_path / "data")
    config = _csv_config(tmp_path, manifest, num_workers=workers)
    config["data"]["verify"] = "none"  # let the bad file reach the loader
    host = probe_host()
    validated = validate_config(config, host=host)
    (tmp_path / "data" / "img03.png").write_bytes(b"garbage")
    with pytest.raises(SampleError) as caught:
        run_experiment(validated, host=host, quiet=True)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith("data.dataset [core.csv]: split 'train' row ")
    assert f"cannot read image {tmp_path / 'data' / 'img03.png'}" in message
    record = json.loads(next((tmp_path / "runs").iterdir()).joinpath("record.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("SampleError: data.dataset")


def test_keyed_split_seeds_each_sample_by_epoch_and_position() -> None:
    class Noisy(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, index: int) -> float:
            return float(torch.rand(()))

    split = KeyedSplit(Noisy(), seed=1, split="train", where="data.dataset")
    from asklepios.sampling import SampleKey

    first = split[SampleKey(0, 5, 2)]
    assert split[SampleKey(0, 5, 2)] == first  # the same key, the same draw
    assert split[SampleKey(1, 5, 2)] != first  # another epoch
    assert split[SampleKey(0, 6, 2)] != first  # another position (a repeated index)
    assert split[3] == split[3] != split[2]  # evaluation: keyed by index


def test_validate_deep_finds_missing_files_before_run_creates_anything(tmp_path: Path) -> None:
    from asklepios.deep_checks import check_deep
    from asklepios.errors import ConfigError

    manifest = _manifest(tmp_path / "data")
    (tmp_path / "data" / "img07.png").unlink()
    host = probe_host()
    config = validate_config(_csv_config(tmp_path, manifest), host=host)
    with pytest.raises(ConfigError) as caught:
        check_deep(config, host)
    (issue,) = caught.value.issues
    assert issue.path == "data.dataset"
    assert "1 of 30 files failed" in issue.message and "img07.png" in issue.message


def test_run_checks_the_files_once_when_the_deep_checks_did(tmp_path: Path, monkeypatch) -> None:
    from asklepios.cli import run_command
    from asklepios.plugins import set_host

    manifest = _manifest(tmp_path / "data")
    set_host(probe_host())
    checked: list[str] = []

    def counting(dataset, level, where):
        checked.append(level)
        return verify_dataset(dataset, level, where)

    monkeypatch.setattr(datafiles, "verify_dataset", counting)
    monkeypatch.setattr("asklepios.build.verify_dataset", counting)
    config = write_config(tmp_path, _csv_config(tmp_path, manifest), "csv.json")
    run_command(config, quiet=True)
    assert checked == ["auto"]  # the deep checks; the build does not read the headers again
    checked.clear()
    run_command(config, ["data.verify=full"], quiet=True)
    assert checked == ["headers", "full"]  # 'full' decodes once, in the build
