"""Evaluators that fit on a split (``Evaluator.fit_split``) and trainer param-group dicts.

A linear probe on frozen features needs the training split's features inside one run: the engine
runs the model over ``fit_split`` with the evaluation transforms, feeds the evaluator, calls
``fit()``, and only then evaluates val and test. Layer-wise learning-rate decay needs one torch
param group per layer: ``Trainer.optimizer_groups`` may return param-group dicts with
``lr_scale``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from asklepios.build import build_experiment, build_optimizers
from asklepios.config import validate_config
from asklepios.engine.run import run_experiment
from asklepios.plugins import PluginHost
from asklepios_sdk import EmptyParams, Evaluator, Trainer, hookimpl
from torch import nn
from torchmetrics.utilities import dim_zero_cat

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import REPO, make_config, write_config

FITS: list[dict[str, Any]] = []


class CentroidProbe(Evaluator):
    """Classify by the nearest class mean of the features seen in ``fit`` (a test probe)."""

    name = "centroid"
    fit_split = "train"

    def __init__(self, params: EmptyParams, ctx: Any) -> None:
        super().__init__()
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.centres: torch.Tensor | None = None

    def update(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> None:
        self.features.append(outputs["logits"].detach().float())
        self.labels.append(batch["label"])

    def fit(self) -> None:
        with self.sync_context():  # every rank fits on the whole split
            x, y = dim_zero_cat(self.features), dim_zero_cat(self.labels)
        FITS.append({"n": len(y)})
        self.centres = torch.stack([x[y == c].mean(0) for c in range(int(y.max()) + 1)])

    def compute(self) -> dict[str, torch.Tensor]:
        assert self.centres is not None, "compute before fit"
        x, y = dim_zero_cat(self.features), dim_zero_cat(self.labels)
        pred = torch.cdist(x, self.centres).argmin(1)
        return {"acc": (pred == y).float().mean(), "n": torch.tensor(float(len(y)))}


class LayerScaledTrainer(Trainer):
    """Give the first layer of an MLP half the learning rate and no weight decay (a test)."""

    def __init__(self, params: EmptyParams, ctx: Any) -> None:
        pass

    def optimizer_groups(self, model: nn.Module) -> dict[str, list[dict[str, Any]]]:
        named = list(model.named_parameters())
        first = [p for n, p in named if n.startswith("body.1.")]
        rest = [p for n, p in named if not n.startswith("body.1.")]
        groups = [
            {"params": first, "lr_scale": 0.5, "weight_decay": 0.0},
            {"params": rest, "lr_scale": 1.0},
        ]
        return {"main": [g for g in groups if g["params"]]}

    def train_step(self, step: Any, batch: dict[str, Any]) -> Any:
        outputs = step.model(batch)
        result = step.loss(outputs, batch)
        step.backward(result.total)
        step.step()
        return result


class _Plugin:
    @staticmethod
    @hookimpl
    def register_evaluators(register: Any) -> None:
        register("centroid", "test_fit_split:CentroidProbe", EmptyParams)

    @staticmethod
    @hookimpl
    def register_trainers(register: Any) -> None:
        register("layer_scaled", "test_fit_split:LayerScaledTrainer", EmptyParams)


def _host() -> PluginHost:
    host = PluginHost(discover=False)
    host.add_plugin(_Plugin, "fitprobe")
    return host


def _config(tmp_path: Path, epochs: int) -> dict[str, Any]:
    config = make_config(tmp_path)
    config["evaluators"] = [{"type": "fitprobe.centroid"}, {"type": "core.classification"}]
    config["train"] = {**config["train"], "epochs": epochs, "monitor": {"metric": "centroid/acc"}}
    return config


def test_a_frozen_model_is_fitted_once_on_the_whole_train_split(tmp_path: Path) -> None:
    FITS.clear()
    host = _host()
    config = validate_config(_config(tmp_path, epochs=0), host=host)
    summary = run_experiment(config, host=host, quiet=True)
    built = build_experiment(config, host.registry)
    assert "train" in built.eval_splits  # the fit split is read with the eval transforms
    assert [{"n": len(built.train_split)}] == FITS
    test = summary["test"]
    assert test["centroid/n"] == len(built.eval_splits["test"])
    assert 0.0 <= test["centroid/acc"] <= 1.0


def test_the_fitting_pass_has_its_own_progress_bar(tmp_path: Path, monkeypatch) -> None:
    from asklepios.engine.progress import RunProgress

    bars: list[tuple[str, int]] = []
    start = RunProgress.start_eval

    def record(self: RunProgress, split: str, batches: int) -> None:
        bars.append((split, batches))
        start(self, split, batches)

    monkeypatch.setattr(RunProgress, "start_eval", record)
    host = _host()
    config = validate_config(_config(tmp_path, epochs=0), host=host)
    run_experiment(config, host=host, quiet=True)
    assert [name for name, _ in bars] == ["fit on train", "test"]
    assert bars[0][1] > 0


def test_the_probe_refits_after_every_optimiser_step_only(tmp_path: Path) -> None:
    FITS.clear()
    host = _host()
    run_experiment(validate_config(_config(tmp_path, epochs=2), host=host), host=host, quiet=True)
    # val after epoch 1 and 2 (the model changed in between), then test of the best checkpoint:
    # the global step did not move since the last fit, so test reuses it
    assert len(FITS) == 2


def test_trainer_param_group_dicts_get_scaled_rates_and_their_own_settings(tmp_path) -> None:
    host = _host()
    config = make_config(tmp_path)
    config["trainer"] = {"type": "fitprobe.layer_scaled"}
    config["optimizer"] = {"name": "adamw", "lr": 0.01, "weight_decay": 0.05}
    config["schedule"] = {"name": "cosine", "min_lr": 0.001}
    built = build_experiment(validate_config(config, host=host), host.registry)
    built.backbone.body[1].bias.requires_grad_(False)  # frozen parameters leave their group
    optimizers, schedules = build_optimizers(built, built.model, steps_per_epoch=4)
    groups = optimizers["main"].param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.005, 0.01])
    assert [g["weight_decay"] for g in groups] == [0.0, 0.05]
    assert [g["lr_scale"] for g in groups] == [0.5, 1.0]
    assert len(groups[0]["params"]) == 1  # body.1.weight only
    for _ in range(4 * config["train"]["epochs"]):
        optimizers["main"].step()
        schedules["main"].step()
    # min_lr is relative to the configured rate: each group ends at lr_scale * min_lr
    assert [g["lr"] for g in groups] == pytest.approx([0.0005, 0.001])


def test_the_conformance_kit_fits_such_evaluators_before_computing() -> None:
    from asklepios_sdk.testing import Conformance, check_plugin

    skip = {"evaluator-ddp": "in-memory plugin: the 2-rank job imports its hooks by name"}
    report = check_plugin(Conformance(hooks=_Plugin, plugin_id="fitprobe", skip=skip))
    report.raise_for_failures()


RUNNER = """
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "core"))
import test_fit_split
from asklepios.plugins import PluginHost, set_host
host = PluginHost(discover=False)
host.add_plugin(test_fit_split._Plugin, "fitprobe")
set_host(host)
from asklepios.cli import run_command
summary = run_command(sys.argv[1], [], resume=None, quiet=True)
rank = os.environ.get("RANK", "0")
with open(os.environ["SUMMARY_OUT"] + f"-{rank}.json", "w") as handle:
    json.dump({"summary": summary, "fits": test_fit_split.FITS}, handle)
"""


@pytest.mark.slow
def test_two_ranks_fit_on_the_whole_split_and_agree_with_one(tmp_path: Path) -> None:
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    config = _config(tmp_path, epochs=0)
    outputs = {}
    for name, launcher in (
        ("one", [sys.executable]),
        (
            "two",
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                "2",
                "--master_port",
                "29541",
            ],
        ),
    ):
        path = write_config(tmp_path, dict(config, output_dir=str(tmp_path / name)), f"{name}.json")
        done = subprocess.run(
            [*launcher, str(runner), str(path)],
            cwd=REPO,
            env={**env, "SUMMARY_OUT": str(tmp_path / name)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[name] = [json.loads(p.read_text()) for p in sorted(tmp_path.glob(f"{name}-*.json"))]
    (one,) = outputs["one"]
    rank0, rank1 = outputs["two"]
    assert rank0["fits"] == rank1["fits"] == one["fits"]  # each rank fitted on all samples
    for key in ("centroid/acc", "centroid/n"):
        assert rank0["summary"]["test"][key] == pytest.approx(one["summary"]["test"][key])
