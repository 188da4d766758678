"""Export a run's model: each format reloads to the same logits; untraceable models say why."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import warnings

import pytest
import torch
from _api_helpers import builtin_host, tiny_run
from asklepios.api import Run
from asklepios.export import ExportError, export_model, sample_batch
from torch import nn

pytestmark = pytest.mark.slow  # every test needs the tiny trained run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    return Run.open(tiny_run(tmp_path_factory), host=builtin_host())


def _logits(run: Run, image: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return run.model()({"image": image})["logits"]


def test_torchscript_reloads_to_the_same_logits_at_any_batch_size(run, tmp_path):
    exported = run.export("torchscript", tmp_path)
    assert exported.path == tmp_path / "model.pt" and exported.max_abs_diff < 1e-5
    image = sample_batch(run.load(), size=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        loaded = torch.jit.load(str(exported.path))
    assert torch.allclose(loaded(image), _logits(run, image), atol=1e-5)
    info = json.loads(exported.preprocessing.read_text())
    assert info["class_names"] == [str(d) for d in range(10)]
    assert info["eval_transforms"] == [{"type": "core.normalize", "mean": [0.3], "std": [0.4]}]
    assert info["input"]["shape"] == ["N", 1, 8, 8] and info["output"]["postprocess"] == "softmax"
    assert info["stage"] == "check" and info["checkpoint"].endswith("fit/best.pt")


def test_each_format_keeps_its_own_preprocessing_file(run, tmp_path):
    for fmt in ("torchscript", "safetensors"):
        run.export(fmt, tmp_path)
    formats = {
        path.name: json.loads(path.read_text())["format"]
        for path in tmp_path.glob("*.preprocessing.json")
    }
    assert formats == {
        "model.pt.preprocessing.json": "torchscript",
        "model.safetensors.preprocessing.json": "safetensors",
    }


def test_safetensors_loads_into_a_rebuilt_model(run, tmp_path):
    from safetensors.torch import load_model

    exported = run.export("safetensors", tmp_path / "weights.safetensors")
    assert exported.path.name == "weights.safetensors"
    assert exported.preprocessing.name == "weights.safetensors.preprocessing.json"
    fresh = Run.open(run.path, host=builtin_host()).load(checkpoint="last", stage="fit").model
    load_model(fresh, str(exported.path))
    image = sample_batch(run.load())
    with torch.no_grad():
        assert torch.equal(fresh({"image": image})["logits"], _logits(run, image))


def test_onnx_runs_in_onnx_runtime(run, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    exported = run.export("onnx", tmp_path)
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    image = sample_batch(run.load(), size=7)
    (got,) = session.run(["logits"], {"image": image.numpy()})
    assert torch.allclose(torch.as_tensor(got), _logits(run, image), atol=1e-4)


class _NeedsLabel(nn.Module):
    """A model that reads more of the batch than the image (a conditional head)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, batch: dict) -> dict:
        return {"logits": self.inner(batch)["logits"] + batch["label"].float()[:, None]}


def test_untraceable_model_names_its_components_and_the_way_out(run, tmp_path):
    loaded = run.load()
    bad = dataclasses.replace(loaded, model=_NeedsLabel(loaded.model))
    with pytest.raises(ExportError) as info:
        export_model(bad, "torchscript", tmp_path)
    message = str(info.value)
    assert "core.mlp" in message and "KeyError" in message and "safetensors" in message
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export_model(loaded, "tflite", tmp_path)


def test_cli_export(run, tmp_path):
    env = {**os.environ, "ASKLEPIOS_DISABLE_PLUGINS": "tensorboard,mlflow"}
    command = [sys.executable, "-m", "asklepios", "export", str(run.path), "-o", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "model.pt").is_file() and "model.pt.preprocessing.json" in result.stdout
