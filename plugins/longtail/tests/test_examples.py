"""Example configs: every one validates; two-stage runs keep their promises (§8.6).

The runs go through the ``asklepios`` command line (plugins never import the core).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("_"))


def _cli() -> str:
    found = Path(sys.executable).with_name("asklepios")
    return str(found) if found.exists() else (shutil.which("asklepios") or "asklepios")


def _asklepios(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1"}
    result = subprocess.run(
        [_cli(), *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        same_type = isinstance(value, dict) and isinstance(out.get(key), dict)
        if same_type and value.get("type", out[key].get("type")) == out[key].get("type"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    parent = doc.pop("extends", None)
    return _merge(_load(path.parent / parent), doc) if parent else doc


def _specs(node, where="config"):
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            yield where, node
        for key, value in node.items():
            yield from _specs(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _specs(value, f"{where}.{i}")


def _registered() -> dict[str, type]:
    from asklepios_longtail import hooks

    found: dict[str, type] = {}

    def register(name, factory, params=None, doc=None):
        found[f"longtail.{name}"] = params

    for hook in (getattr(hooks, name) for name in hooks.__all__):
        hook(register)
    return found


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_components_exist_with_valid_params(path):
    registered = _registered()
    specs = list(_specs(_load(path)))
    assert any(spec["type"].startswith("longtail.") for _, spec in specs)
    for where, spec in specs:
        if not spec["type"].startswith("longtail."):
            continue
        assert spec["type"] in registered, f"{where}: unknown {spec['type']}"
        params = {k: v for k, v in spec.items() if k != "type"}
        registered[spec["type"]].model_validate(params)


def _run(tmp_path: Path, name: str, *overrides: str) -> tuple[Path, dict]:
    sets = [f"--set=output_dir={tmp_path}", "--set=train.log_every=1000"]
    sets += [f"--set={o}" for o in overrides]
    _asklepios("run", str(EXAMPLES / name), "--quiet", "--device", "cpu", *sets)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def _model_state(run_dir: Path, stage: str) -> dict[str, torch.Tensor]:
    path = run_dir / "checkpoints" / stage / "last.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
def test_crt_keeps_the_body_and_lifts_few_shot_recall(tmp_path):
    run_dir, summary = _run(
        tmp_path, "crt.yaml", "train.epochs=5", "stages.1.train.epochs=5", "data.dataset.seed=1"
    )
    stage1, stage2 = _model_state(run_dir, "erm"), _model_state(run_dir, "crt")
    body = [k for k in stage1 if k.startswith("body.")]
    assert body
    for key in body:
        assert torch.equal(stage1[key], stage2[f"model.{key}"]), key
    assert not torch.equal(stage1["classifier.weight"], stage2["head.weight"])
    stages = summary["stages"]
    assert (
        stages["crt"]["val"]["shot_groups/acc_few"] >= stages["erm"]["val"]["shot_groups/acc_few"]
    )


@pytest.mark.slow
def test_lws_changes_only_the_scales(tmp_path):
    run_dir, _ = _run(tmp_path, "lws.yaml", "train.epochs=3", "stages.1.train.epochs=3")
    stage1, stage2 = _model_state(run_dir, "erm"), _model_state(run_dir, "lws")
    for key, value in stage1.items():
        assert torch.equal(value, stage2[f"model.{key}"]), key
    assert not torch.equal(stage2["scales"], torch.ones_like(stage2["scales"]))


@pytest.mark.slow
def test_knn_stage_classifies_with_class_means(tmp_path):
    run_dir, summary = _run(tmp_path, "knn.yaml", "train.epochs=3")
    state = _model_state(run_dir, "knn")
    assert state["centroids"].shape == (10, 64)
    assert summary["test"]["shot_groups/top1"] > 0.3
