"""Example configs (``examples/configs/longtail/``): every one validates; two-stage runs keep
their promises (§8.6).

The runs go through the ``asklepios`` command line (plugins never import the core).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

# the configs live at the repository root, next to the other plugins' configs (issue 5)
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "longtail"
CONFIGS = sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("_"))
README = Path(__file__).resolve().parents[1] / "README.md"


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


def test_no_params_field_shadows_a_config_envelope_key():
    # a component spec's own keys (type, weights) are read by the config envelope, not the params
    for component, params in _registered().items():
        clash = {"type", "weights"} & set(params.model_fields)
        assert not clash, f"{component} params use reserved keys {clash}"


def test_readme_method_table_names_shipped_configs():
    # the MONICA method -> config table points at files that exist, and names every config
    text = README.read_text()
    section = text.split("## MONICA methods → asklepios configs", 1)[1].split("\n## ", 1)[0]
    assert "examples/configs/longtail/" in section
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    named = {
        name for row in rows for name in re.findall(r"`([\w.]+\.yaml)`", row.rsplit("|", 2)[1])
    }
    assert CONFIGS, f"no example configs found in {EXAMPLES}"
    missing = sorted(name for name in named if not (EXAMPLES / name).is_file())
    assert not missing, f"README names configs that are not in {EXAMPLES}: {missing}"
    unlisted = sorted(p.name for p in CONFIGS if p.name not in named)
    assert not unlisted, f"configs in {EXAMPLES} missing from the README table: {unlisted}"


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


def _run(tmp_path: Path, config: Path, *overrides: str) -> tuple[Path, dict]:
    out = tmp_path / "runs"
    sets = [f"--set=output_dir={out}", "--set=train.log_every=1000"]
    sets += [f"--set={o}" for o in overrides]
    _asklepios("run", str(config), "--quiet", "--device", "cpu", *sets)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return run_dir, json.loads((run_dir / "summary.json").read_text())


def _model_state(run_dir: Path, stage: str) -> dict[str, torch.Tensor]:
    path = run_dir / "checkpoints" / stage / "last.pt"
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
def test_decoupled_stages_keep_their_promises(tmp_path):
    """cRT, LWS and KNN stages of the shipped examples started from one ERM stage; GCL's two."""
    stages = {name: _load(EXAMPLES / f"{name}.yaml")["stages"][1] for name in ("crt", "lws", "knn")}
    gcl = _load(EXAMPLES / "gcl.yaml")
    shared = {"loss": gcl["loss"], "data": {"batch_transforms": gcl["data"]["batch_transforms"]}}
    gcl_1st = {"name": "gcl_1st", "model": {"adapters": gcl["model"]["adapters"]}, **shared}
    gcl_2nd = _merge(shared, gcl["stages"][1])
    config = {
        "extends": str(EXAMPLES / "_base.yaml"),
        "name": "decoupled",
        "data": {"dataset": {"type": "longtail.digits_lt", "seed": 1}},
        "train": {"epochs": 5},
        "stages": [{"name": "erm"}]
        + [
            {**stage, "train": {"epochs": 3 if name != "knn" else 1}}
            for name, stage in stages.items()
        ]
        + [{**gcl_1st, "train": {"epochs": 2}}, {**gcl_2nd, "train": {"epochs": 1}}],
    }
    path = tmp_path / "decoupled.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir, summary = _run(tmp_path, path)
    erm = _model_state(run_dir, "erm")
    body = [k for k in erm if k.startswith("body.")]
    assert body
    crt, lws, knn = (_model_state(run_dir, name) for name in ("crt", "lws", "knn"))
    # cRT: frozen body, a fresh head that trains, few-shot recall not below ERM
    for key in body:
        assert torch.equal(erm[key], crt[f"model.{key}"]), key
    assert not torch.equal(erm["classifier.weight"], crt["head.weight"])
    few = {name: s["val"]["shot_groups/acc_few"] for name, s in summary["stages"].items()}
    assert few["crt"] >= few["erm"]
    # LWS: everything but the scales is the stage-1 model
    for key, value in erm.items():
        assert torch.equal(value, lws[f"model.{key}"]), key
    assert not torch.equal(lws["scales"], torch.ones_like(lws["scales"]))
    # KNN: no training, centroids of the collected features
    for key, value in erm.items():
        assert torch.equal(value, knn[f"model.{key}"]), key
    assert knn["centroids"].shape == (10, 64)
    assert summary["stages"]["knn"]["val"]["shot_groups/top1"] > 0.3
    # GCL stage 2 (MONICA GCL_2nd): stage 1's encoder, frozen, under a freshly initialised
    # cosine head, although both heads are called head.weight
    first, second = _model_state(run_dir, "gcl_1st"), _model_state(run_dir, "gcl_2nd")
    for key in (k for k in first if k.startswith("model.")):
        assert torch.equal(first[key], second[key]), key
    assert summary["stages"]["gcl_2nd"]["init_from"] == {
        "loaded": ["model.*"],
        "reinitialised": ["head.*"],
        "frozen": ["model.*"],
    }
    assert summary["stages"]["lws"]["init_from"]["reinitialised"] == ["scales"]
