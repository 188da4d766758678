"""A stage's ``init_from``: what it loads, what starts fresh, and what the run says about it.

The source stage's backbone and its leading adapters that this stage keeps (same type and
``weights:`` in the same place) are loaded; an adapter of another type starts from its fresh
initialisation even where its parameter names match the source's (GCL's stage 2: a fresh cosine
head in place of stage 1's). ``summary.json`` (and the console) name the groups that were
loaded, re-initialised and frozen.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from asklepios_sdk import Adapter, EmptyParams, hookimpl
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))

from _engine_helpers import make_config, only_run_dir, probe_host
from asklepios.config import validate_config
from asklepios.engine.checkpoint import load_checkpoint
from asklepios.engine.run import run_experiment
from asklepios.engine.stage_init import group_names


class _Head(Adapter):
    """Classify the wrapped model's features with a new linear ``head`` (frozen encoder)."""

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__()
        self.num_classes = int(ctx.data.num_classes)

    def wrap(self, model: nn.Module) -> nn.Module:
        self.model = model
        self.head = nn.Linear(int(model.feature_dim), self.num_classes)
        for param in model.parameters():
            param.requires_grad_(False)
        return self

    def forward(self, batch: Any) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        out["logits"] = self.head(out["features"])
        return out


class HeadA(_Head):
    """Classify with head A (a stage-1 head)."""


class HeadB(_Head):
    """Classify with head B (same parameter names as head A, another component)."""


class Scale(Adapter):
    """Multiply the logits by a learned scalar that starts at 1."""

    def __init__(self, params: Any, ctx: Any) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, batch: Any) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        out["logits"] = self.scale * out["logits"]
        return out


STARTS: dict[str, dict[str, Tensor]] = {}
"""Each stage's model state at the start of its first epoch (right after ``init_from``)."""


@hookimpl
def _epoch_start(run: Any, epoch: int) -> None:
    if epoch == 0:
        STARTS[run.stage] = {k: v.clone() for k, v in run.model.state_dict().items()}


@hookimpl
def _register_adapters(register: Any) -> None:
    register("head_a", f"{__name__}:HeadA", EmptyParams)
    register("head_b", f"{__name__}:HeadB", EmptyParams)
    register("scale", f"{__name__}:Scale", EmptyParams)


def _run(tmp_path: Path, first: list[str], second: list[str], **stage: Any) -> dict[str, Any]:
    host = probe_host()
    plugin = types.ModuleType("initprobe")
    plugin.register_adapters = _register_adapters  # type: ignore[attr-defined]
    plugin.epoch_start = _epoch_start  # type: ignore[attr-defined]
    STARTS.clear()
    host.add_plugin(plugin, "initprobe")
    config = make_config(
        tmp_path,
        train={**make_config(tmp_path)["train"], "epochs": 1},
        model={"backbone": {"type": "core.mlp", "hidden": [16]}, "adapters": []},
        stages=[
            {"name": "first", "model": {"adapters": [{"type": f"initprobe.{a}"} for a in first]}},
            {
                "name": "second",
                "init_from": {"stage": "first", "checkpoint": "last"},
                "model": {"adapters": [{"type": f"initprobe.{a}"} for a in second]},
                **stage,
            },
        ],
    )
    summary = run_experiment(validate_config(config, host=host), host=host, quiet=True)
    return dict(summary["stages"]["second"])


def _states(tmp_path: Path) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Return stage 1's saved model and stage 2's model as ``init_from`` left it."""
    ckpts = only_run_dir(tmp_path) / "checkpoints"
    return load_checkpoint(ckpts / "first" / "last.pt")["model"], STARTS["second"]


@pytest.mark.slow
def test_a_head_of_another_type_starts_fresh_though_its_names_match(tmp_path: Path) -> None:
    summary = _run(tmp_path, ["head_a"], ["head_b"])
    first, second = _states(tmp_path)
    assert set(first) == set(second)  # the old rule loaded the whole model on this
    assert torch.equal(first["model.body.1.weight"], second["model.body.1.weight"])
    assert not torch.allclose(first["head.weight"], second["head.weight"])
    assert second["head.weight"].abs().max() <= 1 / 16**0.5 + 1e-6  # nn.Linear's own init
    assert summary["init_from"] == {
        "loaded": ["model.*"],
        "reinitialised": ["head.*"],
        "frozen": ["model.*"],
    }


@pytest.mark.slow
def test_an_adapter_kept_from_the_source_is_loaded_and_a_new_one_is_fresh(
    tmp_path: Path,
) -> None:
    summary = _run(tmp_path, ["head_a"], ["head_a", "scale"])
    first, second = _states(tmp_path)
    for key, value in first.items():
        assert torch.equal(second[f"model.{key}"], value), key
    assert float(second["scale"]) == 1.0
    assert summary["init_from"]["loaded"] == ["model.*"]
    assert summary["init_from"]["reinitialised"] == ["scale"]
    assert summary["init_from"]["frozen"] == ["model.model.*"]


@pytest.mark.slow
def test_the_same_model_is_loaded_whole_and_freeze_patterns_are_reported(
    tmp_path: Path,
) -> None:
    summary = _run(tmp_path, [], [], freeze=["body.*"], replace_head=True)
    first, second = _states(tmp_path)
    assert torch.equal(first["body.1.weight"], second["body.1.weight"])
    assert not torch.equal(first["classifier.weight"], second["classifier.weight"])
    assert summary["init_from"] == {
        "loaded": ["body.*"],
        "reinitialised": ["classifier.*"],
        "frozen": ["body.*"],
    }


def test_group_names_collapse_to_the_shortest_shared_paths() -> None:
    status = {
        "a.x.w": "loaded",
        "a.x.b": "loaded",
        "a.y": "fresh",
        "b.w": "loaded",
        "c": "fresh",
    }
    assert group_names(status) == {"loaded": ["a.x.*", "b.*"], "fresh": ["a.y", "c"]}
    assert group_names({"w": "loaded", "v.b": "loaded"}) == {"loaded": ["*"]}


@pytest.mark.slow
def test_the_trained_second_stage_keeps_the_loaded_frozen_encoder(tmp_path: Path) -> None:
    _run(tmp_path, ["head_a"], ["head_b"])
    ckpts = only_run_dir(tmp_path) / "checkpoints"
    first = load_checkpoint(ckpts / "first" / "last.pt")["model"]
    second = load_checkpoint(ckpts / "second" / "last.pt")["model"]
    assert torch.equal(first["model.body.1.weight"], second["model.body.1.weight"])
