"""Example configs (``examples/configs/panderm/``): each validates and runs end to end, tiny.

The runs go through the ``asklepios`` command line (plugin tests use at most the Python API,
``asklepios.api``). The linear probe also runs with the released checkpoint format loaded through
``panderm.checkpoint`` and checks that the run record carries the file's sha256. The fine-tuned
model is reloaded through ``Run.open(...).model()`` and the run resumed with ``--resume`` after
an emulated kill.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import panderm_release, perturbed_state, tiny_ctx

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "configs" / "panderm"
CONFIGS = sorted(EXAMPLES.glob("*.yaml"))


def _asklepios(*args: str) -> subprocess.CompletedProcess:
    found = Path(sys.executable).with_name("asklepios")
    cli = str(found) if found.exists() else (shutil.which("asklepios") or "asklepios")
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [cli, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _run(config: str, tmp_path: Path, *sets: str) -> tuple[dict, Path]:
    overrides = [arg for value in (f"output_dir={tmp_path}", *sets) for arg in ("--set", value)]
    _asklepios("run", str(EXAMPLES / config), "--quiet", *overrides)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    return json.loads((run_dir / "summary.json").read_text()), run_dir


def test_there_are_the_promised_configs() -> None:
    assert {p.name for p in CONFIGS} == {
        "linear_probe.yaml",
        "finetune.yaml",
        "segmentation.yaml",
    }


@pytest.mark.slow
def test_linear_probe_runs_with_a_checkpoint_in_the_released_format(tmp_path: Path) -> None:
    from asklepios_panderm.params import PanDermViTParams
    from asklepios_panderm.vit import PanDermViT

    params = PanDermViTParams(embed_dim=64, depth=2, num_heads=4, img_size=32, num_classes=0)
    torch.manual_seed(0)
    encoder = PanDermViT(params, tiny_ctx()).encoder
    path = tmp_path / "panderm_ll_data6_checkpoint-499.pth"
    torch.save(panderm_release(perturbed_state(encoder)), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    runs = tmp_path / "runs"
    adapter = f"[{{type: panderm.checkpoint, path: {path}, sha256: {digest}}}]"
    summary, run_dir = _run("linear_probe.yaml", runs, f"model.adapters={adapter}")
    test = summary["test"]
    for name, prefix in (("linear_probe", "lin_"), ("linear_probe_10pct", "lin_"), ("knn", "knn_")):
        for key in ("acc", "bacc", "kappa", "weighted_f1", "auroc", "aupr"):
            assert f"{name}/{prefix}{key}" in test
    record = json.loads((run_dir / "record.json").read_text())
    (checkpoint,) = record["plugins_metadata"]["panderm"]["checkpoints"]
    assert checkpoint["sha256"] == digest and checkpoint["missing_keys"] == []


@pytest.mark.slow
def test_finetune_runs_both_stages_on_a_timm_vit_with_the_checkpoint(tmp_path: Path) -> None:
    """The README's timm route: core.timm + panderm.checkpoint (target timm), mean pooling."""
    from asklepios_panderm.params import PanDermViTParams
    from asklepios_panderm.vit import PanDermViT

    params = PanDermViTParams(embed_dim=64, depth=2, num_heads=4, img_size=32, num_classes=0)
    torch.manual_seed(0)
    path = tmp_path / "panderm.pth"
    torch.save(panderm_release(perturbed_state(PanDermViT(params, tiny_ctx()).encoder)), path)
    vit = (
        "{type: core.timm, model_name: vit_small_patch16_224, kwargs: {embed_dim: 64, depth: 2, "
        "num_heads: 4, img_size: 32, init_values: 1.0e-5, global_pool: avg}}"
    )
    adapter = f"[{{type: panderm.checkpoint, path: {path}, target: timm}}]"
    summary, run_dir = _run(
        "finetune.yaml",
        tmp_path / "runs",
        "train.epochs=1",
        f"model.backbone={vit}",
        f"model.adapters={adapter}",
    )
    stages = summary["stages"]
    assert set(stages) == {"finetune", "tta"}
    assert "classification/accuracy" in stages["tta"]["test"]
    assert stages["finetune"]["selected_checkpoint"] == "best"
    record = json.loads((run_dir / "record.json").read_text())
    (checkpoint,) = record["plugins_metadata"]["panderm"]["checkpoints"]  # stage 1's load
    assert checkpoint["target"] == "timm" and checkpoint["missing_keys"] == []
    _check_round_trip_and_resume(run_dir, path, summary)


def _gammas(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.endswith((".ls1.gamma", ".ls2.gamma"))}


def _check_round_trip_and_resume(run_dir: Path, release: Path, summary: dict) -> None:
    """Reload the fine-tuned model through the API, then resume the run after a kill."""
    from asklepios.api import Run

    # the real loading path: the model is rebuilt from the run's config (core.timm, whose
    # panderm.checkpoint adapter loads the released file again), then the run's best checkpoint
    restored = Run.open(run_dir).model(stage="finetune").state_dict()
    best = torch.load(run_dir / "checkpoints/finetune/best.pt", weights_only=True)["model"]
    assert set(restored) == set(best)
    gammas, released = _gammas(restored), torch.load(release, weights_only=True)
    assert len(gammas) == 4  # ls1 and ls2 of both blocks
    for key, value in gammas.items():
        torch.testing.assert_close(value, best[key], rtol=0, atol=0)  # the trained values
        start = released["encoder." + key.split("model.model.", 1)[1]]  # what training began at
        assert not torch.allclose(value, start), key
    for key, value in best.items():
        torch.testing.assert_close(restored[key], value, rtol=0, atol=0)

    # a run killed during the fine-tune stage's final test, after its last epoch checkpoint
    # (the state tests/core/test_interrupts.py reaches with SIGKILL): the stage's and the run's
    # summaries and the later stage are not written yet
    (run_dir / "checkpoints/finetune/summary.json").unlink()
    shutil.rmtree(run_dir / "checkpoints/tta")
    (run_dir / "summary.json").unlink()
    epoch = run_dir / "checkpoints/finetune/epoch-0000.pt"
    written = {f: f.read_bytes() for f in (epoch, epoch.with_name("best.pt"))}
    output = _asklepios("run", "--resume", str(run_dir)).stdout
    said = "".join(output.split())  # the console may wrap a long line anywhere
    assert "".join(f"resumed finetune from {epoch}".split()) in said, output[-2000:]
    assert all(f.read_bytes() == data for f, data in written.items())  # nothing retrained
    resumed = json.loads((run_dir / "summary.json").read_text())
    for stage in ("finetune", "tta"):  # the restored epoch checkpoint tests as the original did
        assert resumed["stages"][stage]["test"] == summary["stages"][stage]["test"], stage
    record = json.loads((run_dir / "record.json").read_text())
    assert record["status"] == "completed" and len(record["resumes"]) == 1
    (checkpoint,) = record["plugins_metadata"]["panderm"]["checkpoints"]  # loaded again
    assert checkpoint["target"] == "timm" and checkpoint["missing_keys"] == []


@pytest.mark.slow
def test_segmentation_runs(tmp_path: Path) -> None:
    summary, _ = _run("segmentation.yaml", tmp_path, "train.epochs=1")
    assert 0.0 <= summary["test"]["seg/dice"] <= 1.0
    assert 0.0 <= summary["test"]["seg/jaccard"] <= summary["test"]["seg/dice"]
