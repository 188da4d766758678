"""Generation stages: a model makes a dataset on disk, item by item; a later stage trains on it.

The in-memory ``synth`` plugin has 10 requests over 3 classes and a painter that logs each
generate call; batches of 3 make 4 calls (3 + 3 + 3 + 1 requests). The killed run dies inside
its 3rd call, after 2 calls (6 items) were journaled; the resume must make exactly the 4 missing
items in 2 calls, rewrite none of the 6 finished images, and end with the same bytes as a run
that was never interrupted.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import run_with_plugin, write_config

CONFIG: dict[str, Any] = {
    "name": "synth",
    "seed": 5,
    "data": {"dataset": {"type": "synth.requests"}, "loader": {"batch_size": 3}},
    "model": {"backbone": {"type": "synth.painter"}},
    "train": {"epochs": 1, "device": "cpu"},
    "stages": [
        {"name": "paint", "generate": {"split": "train"}},
        {
            "name": "classify",
            "data": {"dataset": {"type": "synth.generated_set", "stage": "paint"}},
            "model": {"backbone": {"type": "core.mlp", "hidden": [8]}},
            "evaluators": [{"type": "core.classification"}],
        },
    ],
}


def _config(tmp_path: Path, name: str, **painter: Any) -> Path:
    config = copy.deepcopy(CONFIG)
    config["output_dir"] = str(tmp_path / name)
    config["model"]["backbone"].update(painter)
    return write_config(tmp_path, config, f"{name}.json")


def _run(tmp_path: Path, args: list[str], out: str, ranks: int = 1) -> subprocess.CompletedProcess:
    return run_with_plugin(tmp_path, "_synthesis_plugin", "synth", args, out, ranks)


def _calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _folder(tmp_path: Path, name: str) -> Path:
    (run_dir,) = (tmp_path / name).iterdir()
    return run_dir / "generated" / "paint"


def _images(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "images").glob("*.png"))}


def _host():
    import _synthesis_plugin
    from asklepios.plugins import PluginHost

    host = PluginHost(discover=False)
    host.add_plugin(_synthesis_plugin, "synth")
    return host


def test_a_generation_stage_writes_a_dataset_that_a_later_stage_trains_on(tmp_path) -> None:
    from asklepios.config import validate_config
    from asklepios.engine.run import run_experiment
    from asklepios_sdk.synthesis import read_generated

    host = _host()
    log = tmp_path / "calls.jsonl"
    config = copy.deepcopy(CONFIG)
    config["output_dir"] = str(tmp_path / "runs")
    config["model"]["backbone"]["log"] = str(log)
    summary = run_experiment(validate_config(config, host=host), host=host, quiet=True)
    assert [c["index"] for c in _calls(log)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    generated = summary["stages"]["paint"]["generated"]
    assert generated["items"] == 10 and generated["generated_now"] == 10
    folder = Path(generated["dir"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] and manifest["items"] == 10 and manifest["stage"] == "paint"
    assert manifest["generator"] == {"painter": {"brightness": 60.0}}
    records = read_generated(folder)
    assert [r["index"] for r in records] == list(range(10))
    assert [r["label"] for r in records] == [i % 3 for i in range(10)]
    assert records[4]["path"] == "images/00000004.png" and records[4]["caption"] == "class 1"
    lines = (folder / "index.csv").read_text().splitlines()
    assert lines[0] == "path,label,index,seed,caption" and len(lines) == 11
    manifest_csv = host.registry.get("dataset", "core.csv")  # another config reads index.csv
    from asklepios_sdk import BuildContext

    data = manifest_csv.build({"path": str(folder / "index.csv")}, BuildContext(), where="t")
    assert sum(len(data.split(n)) for n in data.split_names) == 10
    # the classifier stage trained on the 10 generated images (bright class 2 vs dark class 0)
    classify = summary["stages"]["classify"]
    assert classify["epochs"] == 1 and "classification/accuracy" in classify["val"]


def test_the_same_seed_generates_the_same_items_and_another_seed_other_ones(tmp_path) -> None:
    from asklepios.config import validate_config
    from asklepios.engine.run import run_experiment

    host = _host()
    folders = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        config = copy.deepcopy(CONFIG)
        stages = copy.deepcopy(CONFIG["stages"][:1])
        config.update(output_dir=str(tmp_path / name), seed=seed, stages=stages)
        run_experiment(validate_config(config, host=host), host=host, quiet=True)
        folders.append(_folder(tmp_path, name))
    assert _images(folders[0]) == _images(folders[1])
    assert _images(folders[0]) != _images(folders[2])


def test_a_generation_stage_needs_a_generating_model_and_an_existing_split(tmp_path) -> None:
    from asklepios.config import validate_config
    from asklepios.engine.generate import GenerationError
    from asklepios.engine.run import run_experiment

    host = _host()
    config = copy.deepcopy(CONFIG)
    config.update(output_dir=str(tmp_path / "runs"), stages=copy.deepcopy(CONFIG["stages"][:1]))
    config["model"]["backbone"] = {"type": "synth.plain"}
    with pytest.raises(GenerationError, match="needs a model that generates items"):
        run_experiment(validate_config(config, host=host), host=host, quiet=True)
    config["model"]["backbone"] = {"type": "synth.painter"}
    config["stages"][0]["generate"] = {"split": "test"}
    with pytest.raises(GenerationError, match="'test' is not a split"):
        run_experiment(validate_config(config, host=host), host=host, quiet=True)


def test_a_stage_reading_a_generation_that_has_not_run_says_so(tmp_path) -> None:
    from asklepios.config import validate_config
    from asklepios.engine.run import run_experiment
    from asklepios_sdk import ComponentError

    host = _host()
    config = copy.deepcopy(CONFIG)
    config.update(output_dir=str(tmp_path / "runs"), stages=copy.deepcopy(CONFIG["stages"][1:]))
    with pytest.raises(Exception, match="stage 'paint' has not generated") as info:
        run_experiment(validate_config(config, host=host), host=host, quiet=True)
    assert isinstance(info.value, ComponentError) or "paint" in str(info.value)


@pytest.mark.slow
def test_a_killed_generation_resumes_generating_only_the_missing_items(tmp_path) -> None:
    whole_log = tmp_path / "whole.jsonl"
    done = _run(tmp_path, [str(_config(tmp_path, "whole", log=str(whole_log)))], "whole")
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_calls(whole_log)) == 4
    whole = _images(_folder(tmp_path, "whole"))
    assert len(whole) == 10

    log = tmp_path / "killed.jsonl"
    config = _config(tmp_path, "killed", log=str(log), kill_after_calls=2)
    killed = _run(tmp_path, [str(config)], "killed")
    assert killed.returncode == -9  # SIGKILL inside the 3rd generate call
    before = _calls(log)
    assert [c["index"] for c in before] == [[0, 1, 2], [3, 4, 5]]
    folder = _folder(tmp_path, "killed")
    assert not (folder / "manifest.json").exists()
    finished = {p.name: p.stat().st_mtime_ns for p in (folder / "images").glob("*.png")}
    assert len(finished) == 6

    run_dir = folder.parents[1]
    config_file = run_dir / "config.yaml"
    text = config_file.read_text().replace("kill_after_calls: 2", "kill_after_calls: 0")
    config_file.write_text(text)  # the painter stops killing itself; nothing else changes
    resumed = _run(tmp_path, [str(config), str(run_dir)], "resumed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = _calls(log)[len(before) :]
    assert [c["index"] for c in after] == [[6, 7, 8], [9]]  # 2 calls for the 4 missing items
    made = [i for c in before + after for i in c["index"]]
    assert sorted(made) == list(range(10))  # no item generated twice
    again = {p.name: p.stat().st_mtime_ns for p in (folder / "images").glob("*.png")}
    assert {k: again[k] for k in finished} == finished  # no finished image rewritten
    assert _images(folder) == whole  # the same bytes as the uninterrupted run
    summary = json.loads((tmp_path / "resumed-0.json").read_text())
    generated = summary["stages"]["paint"]["generated"]
    assert (generated["generated_now"], generated["reused"]) == (4, 6)
    records = (folder / "items.jsonl").read_text().splitlines()
    assert len(records) == 10 and "classification/accuracy" in summary["stages"]["classify"]["val"]


@pytest.mark.slow
def test_two_ranks_generate_the_same_dataset_as_one(tmp_path) -> None:
    config = copy.deepcopy(CONFIG)
    config["stages"] = copy.deepcopy(CONFIG["stages"][:1])
    for name in ("one", "two"):
        config["output_dir"] = str(tmp_path / name)
        write_config(tmp_path, config, f"{name}.json")
    one = _run(tmp_path, [str(tmp_path / "one.json")], "one")
    assert one.returncode == 0, one.stderr[-3000:]
    log = tmp_path / "two.jsonl"
    config["model"]["backbone"]["log"] = str(log)
    config["output_dir"] = str(tmp_path / "two")
    two = _run(tmp_path, [str(write_config(tmp_path, config, "two.json"))], "two", ranks=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert sorted(i for c in _calls(log) for i in c["index"]) == list(range(10))
    assert len({c["call"].split("-")[0] for c in _calls(log)}) == 2  # both ranks generated
    first, second = _folder(tmp_path, "one"), _folder(tmp_path, "two")
    assert _images(first) == _images(second)
    assert (first / "items.jsonl").read_bytes() == (second / "items.jsonl").read_bytes()
    journals = sorted(p.name for p in (second / "journal").iterdir())
    assert journals == ["rank-0.jsonl", "rank-1.jsonl"]


def test_deep_checks_report_a_conflict_with_a_pending_generation_and_nothing_else(
    tmp_path,
) -> None:
    from asklepios.config import validate_config
    from asklepios.deep_checks import check_deep
    from asklepios.errors import ConfigError

    host = _host()
    config = copy.deepcopy(CONFIG)
    config["output_dir"] = str(tmp_path / "runs")
    config["stages"][1]["evaluators"] = [{"type": "synth.judge", "max_brightness": 100}]
    check_deep(validate_config(config, host=host), host)  # needs classes: not a conflict
    config["model"]["backbone"]["size"] = 200  # the paint stage's painter, now too bright
    with pytest.raises(ConfigError, match=r"stages\[1\]\.evaluators\[0\].*too bright") as info:
        check_deep(validate_config(config, host=host), host)
    assert len(info.value.issues) == 1


def test_an_item_whose_image_is_gone_is_generated_again(tmp_path) -> None:
    from asklepios.config import validate_config
    from asklepios.engine.run import run_experiment

    host = _host()
    log = tmp_path / "calls.jsonl"
    config = copy.deepcopy(CONFIG)
    config.update(output_dir=str(tmp_path / "runs"), stages=copy.deepcopy(CONFIG["stages"][:1]))
    config["model"]["backbone"]["log"] = str(log)
    checked = validate_config(config, host=host)
    run_experiment(checked, host=host, quiet=True)
    folder = _folder(tmp_path, "runs")
    before = (folder / "images" / "00000004.png").read_bytes()
    (folder / "images" / "00000004.png").unlink()
    (folder.parents[1] / "checkpoints" / "paint" / "summary.json").unlink()  # run it again
    summary = run_experiment(checked, host=host, quiet=True, resume_dir=folder.parents[1])
    assert [c["index"] for c in _calls(log)][-1] == [4]  # one call, for the missing image only
    assert summary["stages"]["paint"]["generated"]["generated_now"] == 1
    assert (folder / "images" / "00000004.png").read_bytes() == before
    assert len((folder / "items.jsonl").read_text().splitlines()) == 10
