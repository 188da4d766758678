"""What the fast level of ``validate`` catches (issues 13 and 14), one test per case.

Local paths (one rule for data and weights), non-finite numbers, duplicate keys, undecodable
files, error attribution (``--set``, ``extends``, inherited ``train``, file-level headers),
``--set`` on a stage by name and its shadowing warning, a stage's monitored metric and its mode,
device strings, and ``--print`` with every default filled in.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from asklepios.config import (
    ConfigWarning,
    config_schema,
    dump_config,
    load_config,
    stage_configs,
    validate_config,
)
from asklepios.config.paths import model_paths
from asklepios.errors import ConfigError
from asklepios_sdk import EmptyParams, Params, hookimpl
from asklepios_sdk.params import LocalDir, LocalFile, LocalPath
from pydantic import BaseModel, Field


class TableParams(Params):
    path: LocalFile = Field(description="A CSV file.")
    images: LocalDir | None = None
    cache: LocalPath = "cache"
    rate: float = Field(0.5, ge=0)


class FocalParams(Params):
    gamma: float = Field(2.0, ge=0)
    alpha: float = 0.25


class NetParams(Params):
    hidden: int = 16


def _factory(params, ctx):
    """Build a test double."""
    return params


@pytest.fixture
def host(make_host, plugin_module):
    @hookimpl
    def register_trainers(register):
        register("supervised", _factory, EmptyParams)

    @hookimpl
    def register_datasets(register):
        register("table", _factory, TableParams)

    @hookimpl
    def register_losses(register):
        register("focal", _factory, FocalParams)

    @hookimpl
    def register_backbones(register):
        register("net", _factory, NetParams)

    @hookimpl
    def register_evaluators(register):
        register("acc", _factory, EmptyParams)

    core = plugin_module(
        "core",
        register_trainers=register_trainers,
        register_datasets=register_datasets,
        register_losses=register_losses,
        register_backbones=register_backbones,
        register_evaluators=register_evaluators,
    )
    return make_host({"core": core})


def _config(data_path: str = "data/table.csv") -> dict[str, Any]:
    return {
        "name": "exp",
        "data": {"dataset": {"type": "core.table", "path": data_path}},
        "model": {"backbone": {"type": "core.net", "hidden": 8}},
        "loss": {"type": "core.focal"},
        "evaluators": [{"type": "core.acc"}],
        "train": {"epochs": 3, "monitor": {"metric": "loss", "mode": "min"}},
        "stages": [
            {"name": "one"},
            {"name": "two", "init_from": {"stage": "one"}, "train": {"epochs": 1}},
        ],
    }


def _write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _issues(caught: pytest.ExceptionInfo[ConfigError]) -> dict[str, Any]:
    return {issue.path: issue for issue in caught.value.issues}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A config folder with its data file, and a different working directory."""
    folder = tmp_path / "project" / "configs"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "table.csv").write_text("a,b\n1,2\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return folder


# -- local paths -------------------------------------------------------------------------------


def test_a_relative_data_path_is_relative_to_the_config_file(project, host):
    config = load_config(_write(project / "exp.yaml", _config()), host=host)
    assert config.data.dataset.params["path"] == str(project / "data" / "table.csv")


def test_a_missing_data_file_names_the_absolute_path_and_what_it_was_relative_to(project, host):
    file = _write(project / "exp.yaml", _config("data/missing.csv"))
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    issue = _issues(caught)["data.dataset.path"]
    assert f"file not found: {project / 'data' / 'missing.csv'}" in issue.message
    assert f"'data/missing.csv' is relative to the folder of {file}" in issue.message
    assert issue.file == str(file) and issue.line == 5 and issue.component == "core.table"
    assert "relative to the config file that writes it" in issue.suggestion


def test_a_path_inherited_through_extends_is_relative_to_the_parent(project, host):
    base = _write(project / "base" / "base.yaml", _config("../data/table.csv"))
    child = _write(project / "methods" / "child.yaml", {"extends": "../base/base.yaml", "seed": 1})
    config = load_config(child, host=host)
    assert config.data.dataset.params["path"] == str(project / "data" / "table.csv")
    _write(base, _config("table.csv"))
    with pytest.raises(ConfigError) as caught:
        load_config(child, host=host)
    issue = _issues(caught)["data.dataset.path"]
    assert issue.file == str(base) and str(project / "base" / "table.csv") in issue.message


def test_a_path_given_with_set_is_relative_to_the_working_directory(project, host):
    file = _write(project / "exp.yaml", _config())
    Path("local.csv").write_text("x\n")
    config = load_config(file, ["data.dataset.path=local.csv"], host=host)
    assert config.data.dataset.params["path"] == str(Path.cwd() / "local.csv")
    with pytest.raises(ConfigError) as caught:
        load_config(file, ["data.dataset.path=nope.csv"], host=host)
    issue = _issues(caught)["data.dataset.path"]
    assert issue.file == "--set data.dataset.path=nope.csv"
    assert "relative to the working directory (given with --set" in issue.message
    assert str(Path.cwd() / "nope.csv") in issue.message


def test_a_folder_where_a_file_is_expected_and_the_reverse(project, host):
    data = _config("data")
    data["data"]["dataset"]["images"] = "data/table.csv"
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", data), host=host)
    issues = _issues(caught)
    assert "is a folder; a file is expected" in issues["data.dataset.path"].message
    assert "is a file; a folder is expected" in issues["data.dataset.images"].message


def test_a_path_that_need_not_exist_is_resolved_but_not_checked(project, host):
    data = _config()
    data["stages"][1]["data"] = {"dataset": {"cache": "stage-cache"}}
    config = load_config(_write(project / "exp.yaml", data), host=host)
    (_, one), (_, two) = stage_configs(config)
    assert one.data.dataset.params["cache"] == str(Path.cwd() / "cache")  # a default: cwd
    assert two.data.dataset.params["cache"] == str(project / "stage-cache")


def test_home_is_expanded(project, host, monkeypatch):
    monkeypatch.setenv("HOME", str(project))
    config = load_config(_write(project / "exp.yaml", _config("~/data/table.csv")), host=host)
    assert config.data.dataset.params["path"] == str(project / "data" / "table.csv")


def test_weights_follow_the_same_rule(project, host):
    data = _config()
    data["model"]["backbone"]["weights"] = {"path": "weights/net.pt"}
    file = _write(project / "exp.yaml", data)
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    issue = _issues(caught)["model.backbone.weights.path"]
    assert f"file not found: {project / 'weights' / 'net.pt'}" in issue.message
    (project / "weights").mkdir()
    (project / "weights" / "net.pt").write_bytes(b"\0")
    config = load_config(file, host=host)
    assert config.model.backbone.weights.path == str(project / "weights" / "net.pt")


def test_a_path_a_stage_writes_is_resolved_and_checked_in_the_stage(project, host):
    data = _config()
    (project / "other.csv").write_text("x\n")
    data["stages"][1]["data"] = {"dataset": {"path": "other.csv"}}
    config = load_config(_write(project / "exp.yaml", data), host=host)
    (_, one), (_, two) = stage_configs(config)
    assert one.data.dataset.params["path"] == str(project / "data" / "table.csv")
    assert two.data.dataset.params["path"] == str(project / "other.csv")
    data["stages"][1]["data"] = {"dataset": {"path": "gone.csv"}}
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", data), host=host)
    assert list(_issues(caught)) == ["stages[1].data.dataset.path"]


def test_a_missing_file_every_stage_inherits_is_reported_once(project, host):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", _config("gone.csv")), host=host)
    assert [i.path for i in caught.value.issues] == ["data.dataset.path"]


def test_path_fields_are_found_in_optionals_lists_dicts_and_nested_models():
    class Inner(BaseModel):
        file: LocalFile

    class Outer(Params):
        one: LocalFile | None = None
        many: list[LocalDir] = Field(default_factory=list)
        named: dict[str, LocalPath] = Field(default_factory=dict)
        inner: Inner | None = None
        text: str = "x"

    data = {
        "one": "a",
        "many": ["b", "c"],
        "named": {"k": "d"},
        "inner": {"file": "e"},
        "text": "f",
    }
    assert sorted(model_paths(Outer, data)) == [
        (("inner", "file"), "file"),
        (("many", 0), "dir"),
        (("many", 1), "dir"),
        (("named", "k"), "path"),
        (("one",), "file"),
    ]


def test_the_schema_marks_path_fields(host):
    table = next(
        item
        for item in config_schema(host)["$defs"]["component.dataset"]["oneOf"]
        if item["title"] == "core.table"
    )
    assert table["properties"]["path"]["format"] == "file-path"


def test_the_core_datasets_resolve_their_files_against_the_config(tmp_path, monkeypatch):
    folder = tmp_path / "cfg"
    (folder / "images" / "train" / "a").mkdir(parents=True)
    (folder / "list.csv").write_text("path,label\n")
    monkeypatch.chdir(tmp_path)
    data = {
        "name": "x",
        "data": {"dataset": {"type": "core.csv", "path": "list.csv", "root": "images"}},
        "model": {"backbone": {"type": "core.mlp"}},
        "stages": [
            {"name": "a"},
            {"name": "b", "data": {"dataset": {"type": "core.image_folder", "root": "imgs"}}},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        load_config(_write(folder / "exp.yaml", data))
    issue = _issues(caught)["stages[1].data.dataset.root"]
    assert f"folder not found: {folder / 'imgs'}" in issue.message
    data["stages"][1]["data"]["dataset"]["root"] = "images"
    config = load_config(_write(folder / "exp.yaml", data))
    assert config.data.dataset.params["path"] == str(folder / "list.csv")
    assert stage_configs(config)[1][1].data.dataset.params["root"] == str(folder / "images")


# -- numbers, keys, encodings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("optimizer: {lr: .inf}", "optimizer.lr"),
        ("loss: {type: core.focal, gamma: 1e999}", "loss.gamma"),
        ("optimizer: {momentum: .nan}", "optimizer.momentum"),
        ("train: {epochs: -.inf}", "train.epochs"),
    ],
)
def test_non_finite_numbers_are_refused_once(project, host, text, path):
    written = text.partition(":")[0]
    base = yaml.safe_dump({k: v for k, v in _config().items() if k not in ("stages", written)})
    file = project / "exp.yaml"
    file.write_text(base + text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    issues = [i for i in caught.value.issues if i.path == path]
    assert len(issues) == 1 and "is not a finite number" in issues[0].message


def test_a_non_finite_set_value_names_the_set(project, host):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", _config()), ["optimizer.lr=1e999"], host=host)
    assert _issues(caught)["optimizer.lr"].file == "--set optimizer.lr=1e999"


def test_a_key_written_twice_is_an_error_with_both_lines(project, host):
    file = project / "dup.yaml"
    file.write_text("name: a\ntrain:\n  epochs: 2\n  epochs: 3\nname: b\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    issues = _issues(caught)
    assert issues["train.epochs"].line == 4 and "first at line 3" in issues["train.epochs"].message
    assert issues["name"].line == 5 and "first at line 1" in issues["name"].message
    assert str(caught.value).startswith(f"config {file} is invalid (2 problems)")


def test_a_json_key_written_twice_is_an_error_with_its_lines(project, host):
    file = project / "dup.json"
    file.write_text('{\n  "name": "a",\n  "train": {"epochs": 1,\n    "epochs": 2}\n}')
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    issue = _issues(caught)["train.epochs"]
    assert issue.line == 4 and "first at line 3" in issue.message
    # YAML 1.1 cannot read every JSON text (json.dumps escapes characters beyond the BMP as
    # surrogate pairs): the repeat is still an error, without a line
    file.write_text('{"name": "a", "note": "\\ud83d\\ude00", "seed": 1, "seed": 2}')
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config(file, host=host)


def test_json_config_problems_name_their_line(project, host):
    file = project / "exp.json"
    file.write_text('{\n  "name": "a",\n  "train": {\n    "epochs": "many"\n  }\n}')
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    assert _issues(caught)["train.epochs"].line == 4


def test_a_file_that_is_not_utf8_is_a_located_error(project, host):
    file = project / "latin.yaml"
    file.write_bytes("name: exp\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    issue = caught.value.issues[0]
    assert "not UTF-8 text: byte 0xe9 at line 2, column 6" in issue.message
    assert issue.line == 2 and str(caught.value).startswith(f"config {file} is invalid")


def test_a_binary_file_is_a_located_error(project, host):
    file = project / "model.yaml"
    file.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(ConfigError, match="binary file") as caught:
        load_config(file, host=host)
    assert str(caught.value).startswith(f"config {file} is invalid")


def test_a_utf8_byte_order_mark_is_fine(project, host):
    file = project / "bom.yaml"
    file.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(_config()).encode())
    assert load_config(file, host=host).name == "exp"


# -- attribution ---------------------------------------------------------------------------------


def test_a_key_created_by_set_is_attributed_to_the_set(project, host):
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", _config()), ["trainr.epochs=1"], host=host)
    assert _issues(caught)["trainr"].file == "--set trainr.epochs=1"


def test_a_missing_extends_parent_names_the_file_and_line_that_named_it(project, host):
    child = project / "child.yaml"
    child.write_text("# a child\nseed: 1\nextends: [exp.yaml, nope.yaml]\n")
    _write(project / "exp.yaml", _config())
    with pytest.raises(ConfigError) as caught:
        load_config(child, host=host)
    issue = caught.value.issues[0]
    assert (issue.file, issue.line, issue.path) == (str(child), 3, "extends[1]")
    assert f"parent config 'nope.yaml' not found: {project / 'nope.yaml'}" in issue.message
    assert str(caught.value).startswith(f"config {child} is invalid")


def test_an_extends_cycle_names_the_file_that_closes_it(project, host):
    _write(project / "a.yaml", {"extends": "b.yaml"})
    _write(project / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(ConfigError) as caught:
        load_config(project / "a.yaml", host=host)
    issue = caught.value.issues[0]
    assert issue.file == str(project / "b.yaml") and issue.line == 1 and "cycle" in issue.message


def test_a_mistake_in_train_is_reported_once_not_per_stage(project, host):
    data = _config()
    data["train"]["eval_every"] = 0
    data["stages"][0]["train"] = {"log_every": 5}
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", data), host=host)
    assert [i.path for i in caught.value.issues] == ["train.eval_every"]


def test_a_stage_that_writes_the_same_mistake_is_reported_too(project, host):
    data = _config()
    data["train"]["eval_every"] = 0
    data["stages"][1]["train"]["eval_every"] = 0
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", data), host=host)
    assert [i.path for i in caught.value.issues] == [
        "train.eval_every",
        "stages[1].train.eval_every",
    ]


def test_a_missing_config_file_says_relative_to_what(project, host):
    with pytest.raises(ConfigError) as caught:
        load_config("configs/nope.yaml", host=host)
    text = str(caught.value)
    assert text.startswith("config configs/nope.yaml is invalid")
    assert str(Path.cwd() / "configs" / "nope.yaml") in text
    assert "relative to the working directory" in text and "relative to this file" not in text


def test_a_yaml_syntax_error_names_the_file_in_the_header(project, host):
    file = project / "broken.yaml"
    file.write_text("name: x\ndata: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    assert str(caught.value).startswith(f"config {file} is invalid (1 problem)")


# -- --set on stages -----------------------------------------------------------------------------


def test_set_addresses_a_stage_by_name(project, host):
    config = load_config(
        _write(project / "exp.yaml", _config()), ["stages.two.train.epochs=5"], host=host
    )
    assert [c.train.epochs for _, c in stage_configs(config)] == [3, 5]


def test_set_on_an_unknown_stage_lists_the_stages(project, host):
    with pytest.raises(ConfigError) as caught:
        load_config(
            _write(project / "exp.yaml", _config()), ["stages.tow.train.epochs=5"], host=host
        )
    issue = caught.value.issues[0]
    assert issue.file == "--set stages.tow.train.epochs=5"
    assert "'tow' is neither an index nor a name of this list (2 item(s): one, two)" in str(
        issue.message
    )


def test_a_set_that_a_stage_shadows_warns_with_the_set_to_type(project, host):
    file = _write(project / "exp.yaml", _config())
    with pytest.warns(ConfigWarning) as record:
        config = load_config(file, ["train.epochs=7"], host=host)
    assert [c.train.epochs for _, c in stage_configs(config)] == [7, 1]
    (message,) = [str(w.message) for w in record]
    assert "--set train.epochs=7 does not reach stage 'two', which sets train.epochs itself" in (
        message
    )
    assert f"({file}:" in message and "--set stages.two.train.epochs=7" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        load_config(file, ["train.epochs=7", "stages.two.train.epochs=7"], host=host)
        load_config(file, ["train.log_every=7"], host=host)


def test_an_evaluation_only_stage_keeps_its_train_section_without_a_warning(project, host):
    data = _config()
    data["stages"][1]["train"] = {"epochs": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        config = load_config(_write(project / "exp.yaml", data), ["train.epochs=7"], host=host)
    assert [c.train.epochs for _, c in stage_configs(config)] == [7, 0]


def test_a_stage_that_replaces_a_component_shadows_its_params(project, host):
    data = _config()
    data["stages"][1]["loss"] = {"type": "core.focal", "alpha": 0.5}
    with pytest.warns(ConfigWarning, match="which sets loss.alpha itself"):
        load_config(_write(project / "exp.yaml", data), ["loss.alpha=0.1"], host=host)


# -- monitor, device, defaults -----------------------------------------------------------------


def test_a_stage_that_names_a_metric_without_mode_takes_the_evaluators_direction(project, host):
    data = _config()
    data["stages"][1]["train"]["monitor"] = {"metric": "acc/accuracy"}
    data["stages"].append({"name": "three", "train": {"monitor": {"metric": "x/y", "mode": "min"}}})
    config = load_config(_write(project / "exp.yaml", data), host=host)
    modes = [(c.train.monitor.metric, c.train.monitor.mode) for _, c in stage_configs(config)]
    assert modes == [("loss", "min"), ("acc/accuracy", None), ("x/y", "min")]


@pytest.mark.parametrize(
    ("device", "hint"), [("gpu", "cuda"), ("cuda0", "cuda:0"), ("cpuu", "cpu")]
)
def test_a_device_that_is_not_one_is_a_located_error(project, host, device, hint):
    data = _config()
    data["train"]["device"] = device
    with pytest.raises(ConfigError) as caught:
        load_config(_write(project / "exp.yaml", data), host=host)
    issue = _issues(caught)["train.device"]
    assert f"'{device}' is not a device" in issue.message and issue.line is not None
    assert issue.suggestion == f"--set train.device={hint}"


def test_a_stage_device_that_the_run_ignores_warns(project, host):
    data = _config()
    data["stages"][1]["train"]["device"] = "cpu"
    with pytest.warns(ConfigWarning, match=r"stages\[1\].train.device: a run uses one device"):
        load_config(_write(project / "exp.yaml", data), host=host)


def test_the_resolved_config_has_every_default(project, host):
    config = load_config(_write(project / "exp.yaml", _config()), host=host)
    dumped = yaml.safe_load(dump_config(config))
    assert dumped["loss"] == {"type": "core.focal", "gamma": 2.0, "alpha": 0.25}
    assert dumped["trainer"] == {"type": "core.supervised"}
    assert list(dumped["data"]["dataset"]) == ["type", "path", "images", "cache", "rate"]
    again = validate_config(copy.deepcopy(dumped), host=host)
    assert again == config


def test_a_stage_that_changes_a_component_gets_its_defaults(project, host):
    data = _config()
    data["stages"][1]["data"] = {"dataset": {"type": "core.table", "path": "data/table.csv"}}
    config = load_config(_write(project / "exp.yaml", data), host=host)
    stage = yaml.safe_load(dump_config(config))["stages"][1]
    assert stage["data"]["dataset"]["rate"] == 0.5


def test_json_configs_get_the_same_checks(project, host):
    file = project / "exp.json"
    file.write_text(json.dumps(_config("data/missing.csv")))
    with pytest.raises(ConfigError, match="file not found"):
        load_config(file, host=host)


def test_the_ldfs_example_keeps_the_best_checkpoint_of_stage_two_by_accuracy():
    # issue 14: stage 2 monitors domain_accuracy/source without a mode; it must not inherit the
    # base's mode 'min' (meant for the stage-1 loss) and keep the worst checkpoint
    example = Path(__file__).resolve().parents[2] / "examples/configs/ldfs/toy_two_stage.yaml"
    if not example.is_file():
        pytest.skip("run from a checkout with examples/")
    monitors = [c.train.monitor for _, c in stage_configs(load_config(example))]
    assert [(m.metric, m.mode) for m in monitors] == [
        ("loss", "min"),
        ("domain_accuracy/source", None),
    ]


def test_a_finished_runs_config_opens_after_its_data_moved(tmp_path):
    import asklepios

    data = {
        "name": "moved",
        "data": {"dataset": {"type": "core.csv", "path": str(tmp_path / "gone.csv")}},
        "model": {"backbone": {"type": "core.mlp"}},
    }
    with pytest.raises(ConfigError, match="file not found"):
        validate_config(data)
    config = validate_config(data, check_files=False)
    assert config.data.dataset.params["path"] == str(tmp_path / "gone.csv")
    run_dir = tmp_path / "runs" / "moved-1"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_config(config))
    assert asklepios.Run.open(run_dir).config == config
