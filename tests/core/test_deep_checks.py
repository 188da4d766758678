"""What ``validate --deep`` (and ``run``, before it creates anything) catches, one test per case.

Each stage's model is built as a skeleton on the meta device from the real built-ins (scikit-learn
digits, ``core.mlp``, ``core.classification``), plus an in-memory plugin for the cases the
built-ins cannot show (a backbone without ``reset_classifier``, evaluators with and without
declared keys).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import yaml
from asklepios.cli import EXIT_ERROR, EXIT_OK, main, run_command
from asklepios.config import load_config
from asklepios.deep_checks import load_checked_config
from asklepios.errors import ConfigError
from asklepios.plugins import PluginHost, set_host
from asklepios_sdk import Backbone, EmptyParams, Evaluator, WeightsError, hookimpl
from torch import nn

SEEN_DEVICES: list[str] = []


class _Plain(Backbone):
    """A linear model without reset_classifier."""

    def __init__(self, ctx: Any) -> None:
        super().__init__()
        self.linear = nn.Linear(64, ctx.data.num_classes)
        SEEN_DEVICES.append(self.linear.weight.device.type)

    def forward(self, batch):
        return {"logits": self.linear(batch["image"].flatten(1))}


class _Declared(Evaluator):
    """An evaluator that declares its keys."""

    name: ClassVar[str] = "declared"
    output_keys: ClassVar[tuple[str, ...]] = ("auc", "brier")

    def update(self, outputs, batch) -> None:
        pass

    def compute(self):
        return {"auc": torch.tensor(0.5), "brier": torch.tensor(0.1)}


class _Undeclared(_Declared):
    """An evaluator whose keys depend on the data."""

    name: ClassVar[str] = "free"
    output_keys: ClassVar[tuple[str, ...]] = ()


class _Normed(_Plain):
    """A linear model with a BatchNorm layer."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.norm = nn.BatchNorm1d(ctx.data.num_classes)

    def forward(self, batch):
        return {"logits": self.norm(super().forward(batch)["logits"])}


class _FitsOnTrain(_Undeclared):
    """An evaluator that fits on a split before it evaluates (as a linear probe does)."""

    name: ClassVar[str] = "fits"
    fit_split: ClassVar[str] = "unlabelled"


def plain(params, ctx):
    """Build a linear backbone without reset_classifier."""
    return _Plain(ctx)


def normed(params, ctx):
    """Build a linear backbone with BatchNorm."""
    return _Normed(ctx)


def fits(params, ctx):
    """Build an evaluator that fits on the 'unlabelled' split."""
    return _FitsOnTrain()


def needs_weights(params, ctx):
    """Fail like a component whose weights an earlier stage writes."""
    raise WeightsError("no weights in the run directory yet")


def declared(params, ctx):
    """Build an evaluator with declared keys."""
    return _Declared()


def undeclared(params, ctx):
    """Build an evaluator without declared keys."""
    return _Undeclared()


@hookimpl
def register_backbones(register):
    register("plain", plain, EmptyParams)
    register("normed", normed, EmptyParams)
    register("needs_weights", needs_weights, EmptyParams)


@hookimpl
def register_evaluators(register):
    register("declared", declared, EmptyParams)
    register("undeclared", undeclared, EmptyParams)
    register("fits", fits, EmptyParams)


@pytest.fixture
def host(plugin_module) -> PluginHost:
    host = PluginHost(strict=True, discover=False, builtins=True)
    module = plugin_module(
        "probe", register_backbones=register_backbones, register_evaluators=register_evaluators
    )
    host.add_plugin(module, "probe", version="1.0", distribution="asklepios-probe")
    set_host(host)
    return host


BASE: dict[str, Any] = {
    "name": "deep",
    "data": {"dataset": {"type": "core.digits", "val_per_class": 5, "test_per_class": 5}},
    "model": {"backbone": {"type": "core.mlp", "hidden": [16]}},
    "evaluators": [{"type": "core.classification"}],
    "train": {"epochs": 1, "device": "cpu", "monitor": {"metric": "classification/accuracy"}},
    "stages": [
        {"name": "first"},
        {"name": "second", "init_from": {"stage": "first"}, "freeze": ["body.*"]},
    ],
}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "deep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _issues(tmp_path: Path, host: PluginHost, data: dict[str, Any], **kwargs: Any) -> dict:
    with pytest.raises(ConfigError) as caught:
        load_checked_config(_write(tmp_path, data), host=host, **kwargs)
    return {issue.path: issue for issue in caught.value.issues}


def _with(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node: Any = data
    parts = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parts[:-1]:
        node = node[part]
    node[parts[-1]] = value
    return data


def test_a_valid_config_passes_both_levels(tmp_path, host):
    config = load_checked_config(_write(tmp_path, BASE), host=host)
    assert config == load_config(_write(tmp_path, BASE), host=host)


def test_models_are_built_on_the_meta_device(tmp_path, host):
    SEEN_DEVICES.clear()
    data = _with("model.backbone", {"type": "probe.plain"})
    data["stages"][1]["freeze"] = ["linear.weight"]
    load_checked_config(_write(tmp_path, data), host=host)
    assert SEEN_DEVICES == ["meta", "meta"]


def test_a_freeze_pattern_must_match_a_parameter_of_the_stage_model(tmp_path, host):
    issues = _issues(tmp_path, host, _with("stages.1.freeze", ["body.*", "backbone.layer*"]))
    issue = issues["stages[1].freeze[1]"]
    assert "pattern 'backbone.layer*' matches no parameter of the model this stage builds" in (
        issue.message
    )
    assert "body.*, classifier.*" in issue.message
    assert issue.file.endswith("deep.yaml") and issue.line is not None
    assert "stages[1].freeze[0]" not in issues


def test_freeze_sees_the_head_that_replace_head_makes(tmp_path, host):
    data = _with("stages.1.freeze", ["classifier.weight"])
    data["stages"][1]["replace_head"] = True
    load_checked_config(_write(tmp_path, data), host=host)


def test_replace_head_needs_reset_classifier(tmp_path, host):
    data = _with("model.backbone", {"type": "probe.plain"})
    data["stages"][1].update(replace_head=True, freeze=[])
    issue = _issues(tmp_path, host, data)["stages[1].replace_head"]
    assert "building a new classifier failed: _Plain cannot replace its classifier" in (
        issue.message
    )


@pytest.mark.parametrize(
    ("metric", "fragment", "hint"),
    [
        (
            "classification/balanced_acc",
            "evaluator 'classification' gives accuracy, balanced_accuracy",
            "classification/balanced_accuracy",
        ),
        ("clasification/accuracy", "its evaluators are named 'classification'", "classification/"),
    ],
)
def test_the_monitored_metric_must_be_one_the_evaluators_give(
    tmp_path, host, metric, fragment, hint
):
    issues = _issues(tmp_path, host, _with("train.monitor.metric", metric))
    assert list(issues) == ["train.monitor.metric"]  # once, though both stages inherit it
    assert fragment in issues["train.monitor.metric"].message
    assert hint in issues["train.monitor.metric"].suggestion


def test_the_monitored_metric_of_a_stage_is_located_in_the_stage(tmp_path, host):
    data = copy.deepcopy(BASE)
    data["stages"][1]["train"] = {"monitor": {"metric": "declared/acc"}}
    data["stages"][1]["evaluators"] = [{"type": "probe.declared"}]
    issue = _issues(tmp_path, host, data)["stages[1].train.monitor.metric"]
    assert "evaluator 'declared' gives auc, brier" in issue.message


def test_undeclared_keys_loss_and_stages_without_epochs_are_not_checked(tmp_path, host):
    data = copy.deepcopy(BASE)
    data["evaluators"] = [{"type": "probe.undeclared"}]
    data["train"]["monitor"]["metric"] = "free/anything"
    data["stages"][1]["train"] = {"monitor": {"metric": "loss"}}
    data["stages"].append({"name": "third", "train": {"epochs": 0, "monitor": {"metric": "x/y"}}})
    load_checked_config(_write(tmp_path, data), host=host)


def test_a_cuda_device_on_a_machine_without_one_is_a_located_error(tmp_path, host):
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    issue = _issues(tmp_path, host, _with("train.device", "cuda"))["train.device"]
    assert "'cuda' asks for a CUDA GPU, but this machine has none" in issue.message
    assert issue.line is not None and "--set train.device=auto" in issue.suggestion
    issue = _issues(tmp_path, host, BASE, device="cuda:1")["train.device"]
    assert issue.file == "--device cuda:1"
    issue = _issues(tmp_path, host, BASE, device="gpu")["train.device"]
    assert issue.file == "--device gpu" and "'gpu' is not a device" in issue.message


def test_init_from_a_stage_whose_checkpoint_does_not_fit(tmp_path, host):
    data = copy.deepcopy(BASE)
    data["stages"][1]["model"] = {"backbone": {"hidden": [32]}}
    issue = _issues(tmp_path, host, data)["stages[1].init_from"]
    assert "the checkpoint of stage 'first' does not fit the model this stage builds" in (
        issue.message
    )
    assert "body.1.weight: (16, 64) -> (32, 64)" in issue.message


def test_a_component_that_fails_to_build_is_located(tmp_path, host):
    data = _with("data.dataset.val_per_class", 200)
    issue = _issues(tmp_path, host, data)["data.dataset"]
    assert "building the data failed" in issue.message and "leaves no training data" in (
        issue.message
    )


def test_batch_size_one_with_batchnorm_is_refused_where_it_is_set(tmp_path, host):
    data = _with("model.backbone", {"type": "probe.normed"})
    data["stages"][1]["freeze"] = []
    data["stages"][1]["data"] = {"loader": {"batch_size": 1}}
    issues = _issues(tmp_path, host, data)
    assert list(issues) == ["stages[1].data.loader.batch_size"]
    assert "BatchNorm layers (norm) cannot normalise a single sample" in (
        issues["stages[1].data.loader.batch_size"].message
    )
    data["stages"][1]["train"] = {"epochs": 0}  # evaluation only: nothing trains
    load_checked_config(_write(tmp_path, data), host=host)


def test_an_evaluator_must_fit_on_a_split_the_dataset_has(tmp_path, host):
    data = _with("evaluators", [{"type": "core.classification"}, {"type": "probe.fits"}])
    issue = _issues(tmp_path, host, data)["evaluators[1]"]
    assert "fits on split 'unlabelled'" in issue.message
    assert "'train'" in (issue.suggestion or "")


def test_weights_a_run_writes_later_are_left_to_the_run(tmp_path, host):
    data = copy.deepcopy(BASE)
    data["stages"][1].update(model={"backbone": {"type": "probe.needs_weights"}}, freeze=[])
    data["stages"][1].pop("init_from")
    load_checked_config(_write(tmp_path, data), host=host)


def test_run_checks_deeply_before_it_creates_the_run_directory(tmp_path, host):
    out = tmp_path / "runs"
    file = _write(tmp_path, _with("stages.1.freeze", ["nothing.*"]))
    with pytest.raises(ConfigError, match="matches no parameter"):
        run_command(file, [f"output_dir={out}"], quiet=True)
    assert not out.exists()


def test_the_cli_reports_deep_problems_only_with_deep(tmp_path, host, capsys):
    file = _write(tmp_path, _with("stages.1.freeze", ["nothing.*"]))
    assert main(["validate", str(file)]) == EXIT_OK
    assert "fast checks" in capsys.readouterr().out
    assert main(["validate", "--deep", str(file)]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert f"error: config {file} is invalid (1 problem)" in err
    assert "stages[1].freeze[0]: pattern 'nothing.*'" in err
