"""Config loading (YAML/JSON, extends, --set), two-phase validation, stages, dump and schema."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from asklepios.config import (
    ConfigWarning,
    ExperimentConfig,
    config_schema,
    dump_config,
    load_config,
    stage_configs,
    validate_config,
)
from asklepios.config.loader import merge, parse_override
from asklepios.errors import ConfigError, PluginLoadError
from asklepios_sdk import EmptyParams, Params, hookimpl
from pydantic import Field


class FocalParams(Params):
    gamma: float = Field(2.0, ge=0)


class MLPParams(Params):
    hidden: int = 16


class SamplerParams(Params):
    alpha: float


class FlipParams(Params):
    p: float = Field(0.5, ge=0, le=1)


def _factory(params, ctx):
    """Build a test double."""
    return params


@pytest.fixture
def host(make_host, plugin_module):
    @hookimpl
    def core_trainers(register):
        register("supervised", _factory, EmptyParams)

    @hookimpl
    def core_datasets(register):
        register("digits", _factory, EmptyParams)

    @hookimpl
    def core_losses(register):
        register("cross_entropy", _factory, EmptyParams)

    @hookimpl
    def lt_losses(register):
        register("focal", _factory, FocalParams)

    @hookimpl
    def lt_samplers(register):
        register("power", _factory, SamplerParams)

    @hookimpl
    def lt_augmentations(register):
        register("flip", _factory, FlipParams)

    @hookimpl
    def lt_backbones(register):
        register("mlp", _factory, MLPParams)

    @hookimpl
    def lt_evaluators(register):
        register("acc", _factory, EmptyParams)

    @hookimpl
    def alt_losses(register):
        register("focal", _factory, FocalParams)

    core = plugin_module(
        "core",
        register_trainers=core_trainers,
        register_datasets=core_datasets,
        register_losses=core_losses,
    )
    lt = plugin_module(
        "lt",
        register_losses=lt_losses,
        register_samplers=lt_samplers,
        register_augmentations=lt_augmentations,
        register_backbones=lt_backbones,
        register_evaluators=lt_evaluators,
    )
    alt = plugin_module("alt", register_losses=alt_losses)
    return make_host({"core": core, "lt": lt, "alt": alt})


BASE: dict[str, Any] = {
    "name": "exp",
    "data": {
        "dataset": {"type": "core.digits"},
        "sampler": {"type": "lt.power", "alpha": 0.5},
        "transforms": {"train": [{"type": "lt.flip", "p": 0.5}]},
    },
    "model": {"backbone": {"type": "lt.mlp", "hidden": 8}},
    "loss": {"type": "lt.focal", "gamma": 2.0},
    "evaluators": [{"type": "lt.acc"}],
    "stages": [
        {"name": "one", "train": {"epochs": 2}},
        {"name": "two", "init_from": {"stage": "one"}, "loss": {"gamma": 1.0}},
    ],
}


def write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _set(data: dict, dotted: str, value: Any) -> dict:
    out = copy.deepcopy(data)
    node: Any = out
    parts = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    for part in parts[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return out


_DELETE = object()

# (case id, key to change, new value, expected issue path, message fragment, component)
BAD_CONFIGS = [
    ("unknown-top-key", "trainr", {}, "trainr", "unknown key", None),
    ("missing-name", "name", _DELETE, "name", "required key is missing", None),
    ("negative-epochs", "train", {"epochs": -1}, "train.epochs", "greater than or equal", None),
    ("zero-batch", "data.loader", {"batch_size": 0}, "data.loader.batch_size", "greater", None),
    ("schedule-name", "schedule", {"name": "cosin"}, "schedule.name", "Input should be", None),
    ("unknown-id", "loss.type", "lt.focl", "loss.type", "Did you mean 'lt.focal'", "lt.focl"),
    ("ambiguous-bare", "loss.type", "focal", "loss.type", "alt.focal, lt.focal", "focal"),
    (
        "wrong-kind",
        "model.backbone.type",
        "lt.focal",
        "model.backbone.type",
        "unknown backbone",
        None,
    ),
    ("no-plugin", "evaluators.0.type", "nope.acc", "evaluators[0].type", "no plugin 'nope'", None),
    ("param-type", "loss.gamma", "abc", "loss.gamma", "valid number", "lt.focal"),
    ("param-range", "loss.gamma", -1, "loss.gamma", "greater than or equal", "lt.focal"),
    (
        "unknown-param",
        "model.backbone",
        {"type": "lt.mlp", "hiden": 3},
        "model.backbone.hiden",
        "unknown parameter",
        "lt.mlp",
    ),
    (
        "list-item-param",
        "data.transforms.train.0.p",
        2,
        "data.transforms.train[0].p",
        "less than or equal",
        "lt.flip",
    ),
    (
        "missing-param",
        "data.sampler",
        {"type": "lt.power"},
        "data.sampler.alpha",
        "Field required",
        "lt.power",
    ),
    ("missing-type", "loss", {"gamma": 1}, "loss.type", "required key is missing", None),
    (
        "weights-key",
        "model.backbone.weights",
        {"pth": "x.pt"},
        "model.backbone.weights.pth",
        "unknown key",
        None,
    ),
    (
        "stage-param",
        "stages.1.loss",
        {"gamma": -2},
        "stages[1].loss.gamma",
        "greater than or equal",
        "lt.focal",
    ),
    (
        "stage-init",
        "stages.1.init_from",
        {"stage": "zero"},
        "stages[1].init_from.stage",
        "not an earlier stage",
        None,
    ),
    (
        "stage-envelope",
        "stages.0.train",
        {"epochs": -3},
        "stages[0].train.epochs",
        "greater than or equal",
        None,
    ),
    ("stage-unknown-key", "stages.0.los", {}, "stages[0].los", "unknown key", None),
    ("requires-missing", "requires", {"nope": ">=1"}, "requires.nope", "not installed", None),
    (
        "requires-version",
        "requires",
        {"lt": ">=2"},
        "requires.lt",
        "lt>=2; asklepios-lt 1.2.3",
        None,
    ),
]


@pytest.mark.parametrize(
    ("key", "value", "path", "fragment", "component"),
    [case[1:] for case in BAD_CONFIGS],
    ids=[case[0] for case in BAD_CONFIGS],
)
def test_bad_config_reports_the_exact_location(
    tmp_path, host, key, value, path, fragment, component
):
    file = write(tmp_path / "exp.yaml", _set(BASE, key, value))
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    issues = caught.value.issues
    matching = [i for i in issues if i.path == path]
    assert matching, f"no issue at {path}: {[i.format() for i in issues]}"
    issue = matching[0]
    assert fragment in issue.message or fragment in (issue.suggestion or "")
    assert issue.file.endswith("exp.yaml")
    if component:
        assert issue.component == component
    if component and "." in component and not component.startswith("nope"):
        assert issue.plugin == "lt 1.2.3"


def test_valid_config_resolves_and_returns_the_model(tmp_path, host):
    config = load_config(write(tmp_path / "ok.yaml", BASE), host=host)
    assert isinstance(config, ExperimentConfig)
    assert config.loss.type == "lt.focal" and config.loss.params == {"gamma": 2.0}
    assert config.trainer.type == "core.supervised"


def test_every_problem_is_reported_at_once(tmp_path, host):
    data = _set(BASE, "loss.gamma", "abc")
    data = _set(data, "model.backbone.hiden", 1)
    data = _set(data, "trainr", 1)
    data = _set(data, "evaluators.0.type", "lt.acx")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path / "many.yaml", data), host=host)
    paths = {i.path for i in caught.value.issues}
    assert {"loss.gamma", "model.backbone.hiden", "trainr", "evaluators[0].type"} <= paths
    assert "(4 problems)" in str(caught.value)


def test_bare_names_are_written_back_as_full_ids(tmp_path, host):
    data = _set(BASE, "model.backbone.type", "mlp")
    data = _set(data, "data.dataset.type", "digits")
    data = _set(data, "stages.1.loss", {"type": "power_never"})
    data["stages"][1]["loss"] = {"type": "lt.focal", "gamma": 1.0}
    config = load_config(write(tmp_path / "bare.yaml", data), host=host)
    assert config.model.backbone.type == "lt.mlp"
    assert config.data.dataset.type == "core.digits"
    dumped = yaml.safe_load(dump_config(config))
    assert dumped["model"]["backbone"] == {"type": "lt.mlp", "hidden": 8}


def test_extends_merges_keywise_and_errors_name_the_right_file(tmp_path, host):
    (tmp_path / "methods").mkdir()
    write(tmp_path / "base.yaml", _set(BASE, "loss.gamma", -5))
    write(
        tmp_path / "methods" / "child.yaml",
        {"extends": "../base.yaml", "seed": 3, "model": {"backbone": {"hidden": "wide"}}},
    )
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "methods" / "child.yaml", host=host)
    by_path = {i.path: i for i in caught.value.issues}
    assert by_path["loss.gamma"].file.endswith("base.yaml")
    assert by_path["model.backbone.hidden"].file.endswith("child.yaml")


def test_extends_list_merges_in_order_and_child_wins(tmp_path, host):
    write(tmp_path / "a.yaml", BASE)
    write(tmp_path / "b.yaml", {"seed": 1, "loss": {"gamma": 3.0}})
    write(tmp_path / "c.yaml", {"extends": ["a.yaml", "b.yaml"], "seed": 2})
    config = load_config(tmp_path / "c.yaml", host=host)
    assert config.seed == 2
    assert config.loss.params == {"gamma": 3.0}
    assert config.model.backbone.params == {"hidden": 8}


def test_extends_cycle_is_an_error(tmp_path, host):
    write(tmp_path / "a.yaml", {"extends": "b.yaml"})
    write(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml", host=host)


def test_overrides_parse_yaml_scalars_and_index_lists(tmp_path, host):
    file = write(tmp_path / "exp.yaml", BASE)
    with pytest.warns(ConfigWarning, match="does not reach stage 'two'"):  # it sets loss.gamma
        config = load_config(
            file,
            [
                "seed=7",
                "train.amp=bf16",
                "train.deterministic=false",
                "optimizer.lr=1e-2",
                "loss.gamma=0",
                "data.transforms.train.0.p=1",
                "schedule.milestones=[3, 6]",
                "train.grad_clip=null",
                "evaluators.1={type: lt.acc}",
            ],
            host=host,
        )
    assert config.seed == 7 and config.train.amp == "bf16" and config.train.deterministic is False
    assert config.optimizer.lr == pytest.approx(0.01)
    assert config.loss.params == {"gamma": 0}
    assert config.data.transforms.train[0].params == {"p": 1}
    assert config.schedule.milestones == [3, 6]
    assert [e.type for e in config.evaluators] == ["lt.acc", "lt.acc"]


def test_override_errors_name_the_override(tmp_path, host):
    file = write(tmp_path / "exp.yaml", BASE)
    with pytest.raises(ConfigError) as caught:
        load_config(file, ["loss.gamma=-1", "stages.two.loss.gamma=-1"], host=host)
    assert caught.value.issues[0].file == "--set loss.gamma=-1"
    assert caught.value.issues[1].file == "--set stages.two.loss.gamma=-1"
    for bad, fragment in [
        ("seed", "KEY.PATH=VALUE"),
        ("evaluators.5.type=x", "not an index"),
        ("loss.gamma.deep=1", "inside a float value"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            load_config(file, [bad], host=host)


@pytest.mark.parametrize(
    "text", ["a.b=!!python/name:os.system", "a=!!python/object/apply:os.system ['echo hi']"]
)
def test_parse_override_never_executes_code(text):
    with pytest.raises(ConfigError, match="Python tags are not allowed"):
        parse_override(text)


def test_parse_override_values_are_yaml_scalars():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=1e-3") == (["a"], 0.001)
    assert parse_override("a=yes") == (["a"], True)
    assert parse_override("a=") == (["a"], None)
    assert parse_override("a=x=y") == (["a"], "x=y")


def test_yaml_python_tags_are_rejected(tmp_path, host):
    file = tmp_path / "evil.yaml"
    file.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="no Python tags"):
        load_config(file, host=host)


def test_yaml_syntax_error_gives_line(tmp_path, host):
    file = tmp_path / "broken.yaml"
    file.write_text("name: x\ndata: [\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+"):
        load_config(file, host=host)


def test_json_configs_and_non_mapping_documents(tmp_path, host):
    file = tmp_path / "exp.json"
    file.write_text(json.dumps(BASE))
    assert load_config(file, host=host).name == "exp"
    file.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(file, host=host)
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "missing.yaml", host=host)


def test_stage_configs_merge_mappings_and_replace_lists(tmp_path, host):
    data = copy.deepcopy(BASE)
    data["stages"][1]["evaluators"] = [{"type": "lt.acc"}, {"type": "lt.acc"}]
    data["stages"][1]["model"] = {"backbone": {"type": "lt.mlp"}}
    config = load_config(write(tmp_path / "s.yaml", data), host=host)
    (first, one), (second, two) = stage_configs(config)
    assert (first.name, second.name) == ("one", "two")
    assert one.train.epochs == 2 and two.train.epochs == 10
    assert one.loss.params == {"gamma": 2.0} and two.loss.params == {"gamma": 1.0}
    assert len(one.evaluators) == 1 and len(two.evaluators) == 2
    assert two.model.backbone.params == {"hidden": 8}  # same type: params merge
    assert one.stages == [] and two.stages == []


def test_stage_type_change_replaces_the_component(tmp_path, host):
    data = copy.deepcopy(BASE)
    data["stages"][1]["loss"] = {"type": "core.cross_entropy"}
    config = load_config(write(tmp_path / "s.yaml", data), host=host)
    loss = stage_configs(config)[1][1].loss
    assert loss.type == "core.cross_entropy" and loss.params == {}


def test_no_stages_gives_main(tmp_path, host):
    data = {k: v for k, v in BASE.items() if k != "stages"}
    config = load_config(write(tmp_path / "m.yaml", data), host=host)
    assert stage_configs(config) == [(None, config)]


def test_dump_round_trips(tmp_path, host):
    config = load_config(write(tmp_path / "exp.yaml", BASE), host=host)
    text = dump_config(config)
    assert "weights" not in text
    again = load_config(write(tmp_path / "again.yaml", yaml.safe_load(text)), host=host)
    assert again == config
    assert validate_config(yaml.safe_load(text), host=host) == config


def test_in_memory_configs_cannot_extend(host):
    with pytest.raises(ConfigError, match="only when loading a file"):
        validate_config({**BASE, "extends": "base.yaml"}, host=host)


def test_merge_does_not_mutate_inputs():
    base = {"a": {"b": [1, 2], "c": 1}, "t": {"type": "x", "p": 1}}
    over = {"a": {"b": [3]}, "t": {"type": "y"}}
    out = merge(base, over)
    assert out == {"a": {"b": [3], "c": 1}, "t": {"type": "y"}}
    assert base["a"]["b"] == [1, 2] and base["t"] == {"type": "x", "p": 1}


def test_incompatible_plugin_fails_only_its_config_without_import(tmp_path, fake_site):
    module = fake_site.add(
        "oldplug",
        "from asklepios_sdk import hookimpl\n",
        version="0.3",
        requires=("asklepios<0.0.1",),
    )
    host = fake_site.host()
    data = {
        "name": "x",
        "data": {"dataset": {"type": "oldplug.data"}},
        "model": {"backbone": {"type": "oldplug.net"}},
        "trainer": {"type": "oldplug.trainer"},
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(data, host=host)
    issue = caught.value.issues[0]
    assert issue.path == "data.dataset.type"
    assert "asklepios-oldplug 0.3 requires asklepios<0.0.1; you have" in issue.message
    assert issue.plugin == "oldplug 0.3"
    assert "--disable oldplug" in issue.suggestion
    assert module not in sys.modules


def test_failed_plugin_in_config_names_the_cause(fake_site):
    fake_site.add("broken", "import a_module_that_is_missing_q\n")
    data = {
        "name": "x",
        "data": {"dataset": {"type": "broken.data"}},
        "model": {"backbone": {"type": "broken.net"}},
        "trainer": {"type": "broken.trainer"},
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(data, host=fake_site.host())
    text = str(caught.value)
    assert "comes from plugin 'broken' (asklepios-broken 0.1.0) failed to load" in text
    assert "a_module_that_is_missing_q" in text
    with pytest.raises(PluginLoadError, match="a_module_that_is_missing_q"):
        validate_config(data, host=fake_site.host(strict=True))


def test_schema_composes_components_by_kind(host):
    schema = config_schema(host)
    json.dumps(schema)
    loss = schema["$defs"]["component.loss"]["oneOf"]
    by_title = {item["title"]: item for item in loss}
    focal = by_title["lt.focal"]
    assert focal["properties"]["type"]["enum"] == ["lt.focal"]  # 'focal' is ambiguous
    assert focal["properties"]["gamma"]["minimum"] == 0
    assert focal["additionalProperties"] is False
    mlp = schema["$defs"]["component.backbone"]["oneOf"][0]
    assert mlp["properties"]["type"]["enum"] == ["lt.mlp", "mlp"]
    model = schema["$defs"]["ModelConfig"]["properties"]
    assert model["backbone"] == {"$ref": "#/$defs/component.backbone"}
    assert schema["properties"]["evaluators"]["items"] == {"$ref": "#/$defs/component.evaluator"}
    assert schema["properties"]["loss"]["anyOf"][0] == {"$ref": "#/$defs/component.loss"}
    assert "extends" in schema["properties"]


def test_issues_carry_the_yaml_line(tmp_path, host):
    file = tmp_path / "lines.yaml"
    file.write_text(
        "name: exp\n"
        "data:\n"
        "  dataset: {type: core.digits}\n"
        "model:\n"
        "  backbone:\n"
        "    type: lt.mlp\n"
        "    hidden: wide\n"
        "evaluators:\n"
        "  - {type: lt.acc}\n"
        "  - {type: lt.nope}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(file, host=host)
    lines = {i.path: i.line for i in caught.value.issues}
    assert lines == {"model.backbone.hidden": 7, "evaluators[1].type": 10}
    assert f"{file}:7: model.backbone.hidden" in str(caught.value)


def test_required_plugins_are_loaded_for_their_lifecycle_hooks(host, plugin_module):
    seen = []

    @hookimpl
    def run_start(run):
        seen.append(run)

    @hookimpl
    def register_losses(register):
        raise RuntimeError("logger hook broke")

    host.add_plugin(plugin_module("logger", run_start=run_start), "logger", version="0.2")
    data = {k: v for k, v in BASE.items() if k != "stages"}
    assert not host.has_impl("run_start")
    validate_config({**data, "requires": {"logger": ">=0.1"}}, host=host)
    assert host.has_impl("run_start") and not host.info("logger").activated
    host.add_plugin(plugin_module("broken", register_losses=register_losses), "broken")
    validate_config({**data, "requires": {"broken": ""}}, host=host)  # loads; hooks not run
    host.add_plugin(plugin_module("bad", registr_losses=run_start), "bad")
    with pytest.raises(ConfigError) as caught:
        validate_config({**data, "requires": {"bad": ""}}, host=host)
    issue = caught.value.issues[0]
    assert issue.path == "requires.bad" and "registr_losses" in issue.message


def test_a_params_validator_that_crashes_is_reported(host, plugin_module):
    from pydantic import field_validator

    class Crashing(Params):
        size: int = 1

        @field_validator("size")
        @classmethod
        def _crash(cls, value):
            raise TypeError("validator bug")

    @hookimpl
    def register_losses(register):
        register("crash", _factory, Crashing)

    host.add_plugin(plugin_module("crashy", register_losses=register_losses), "crashy")
    data = {k: v for k, v in BASE.items() if k != "stages"}
    with pytest.raises(ConfigError) as caught:
        validate_config({**data, "loss": {"type": "crashy.crash", "size": 2}}, host=host)
    issue = caught.value.issues[0]
    assert issue.path == "loss" and "TypeError: validator bug" in issue.message
