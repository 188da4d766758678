"""End to end on GBSG2 through `asklepios run`, against CoxPH and a constant KM predictor."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from asklepios_sdk import BuildContext
from asklepios_unisurv.datasets import SksurvDataset
from asklepios_unisurv.margins import fit_km
from asklepios_unisurv.metrics import survival_metrics
from asklepios_unisurv.params import SksurvDatasetParams

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "configs" / "unisurv" / "gbsg2.yaml"
FAST = {
    "data.dataset.num_folds": None,
    "data.dataset.test_size": 0.2,
    "data.loader.batch_size": 32,
    "model.backbone.d_model": 16,
    "model.backbone.num_layers": 1,
    "model.backbone.num_heads": 2,
    "model.backbone.d_ff": 32,
    "loss.alpha_v": 0.01,
    "optimizer.lr": 0.003,
    "train.epochs": 5,
    "train.device": "cpu",
}
"""The example with a CPU-test recipe: a tiny model, 5 epochs, a larger step and alpha_v = 0.01
(one of the values of the paper's grid search); alpha_d stays 1, so pairs are exercised."""


def _asklepios() -> str:
    found = shutil.which("asklepios") or str(Path(sys.executable).with_name("asklepios"))
    if not Path(found).exists():
        pytest.skip("the asklepios CLI is not installed")
    return found


def _baselines(params: SksurvDatasetParams) -> dict[str, dict[str, float]]:
    from lifelines import CoxPHFitter

    data = SksurvDataset(params, BuildContext())
    train, test = data.split("train"), data.split("test")
    cols = [f"f{i}" for i in range(train.features.shape[1])]

    def frame(split):
        import pandas as pd

        table = pd.DataFrame(split.features.numpy(), columns=cols)
        return table.assign(T=split.times, E=split.events)

    cox = CoxPHFitter(penalizer=0.01).fit(frame(train), "T", "E")
    risk = cox.predict_partial_hazard(frame(test)).to_numpy()
    curve = fit_km(train.times, train.events)
    restricted_mean = float(curve.tail[0])
    return {
        "cox": survival_metrics(test.times, test.events, -risk),
        "constant": survival_metrics(test.times, test.events, np.full(len(test), restricted_mean)),
    }


@pytest.mark.slow
def test_gbsg2_run_beats_the_constant_and_approaches_coxph(tmp_path):
    config = yaml.safe_load(EXAMPLE.read_text())
    for dotted, value in {**FAST, "output_dir": str(tmp_path)}.items():
        *parents, leaf = dotted.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[leaf] = value
    path = tmp_path / "gbsg2_fast.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [_asklepios(), "--strict", "run", str(path), "--quiet"]
    env = {**os.environ, "ASKLEPIOS_STRICT_PLUGINS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (summary,) = tmp_path.glob("*/summary.json")
    ours = json.loads(summary.read_text())["stages"]["main"]["test"]
    base = _baselines(SksurvDatasetParams(name="gbsg2", t_max=96, test_size=0.2, val_size=0.1))
    print("unisurv", ours, "\nbaselines", base)
    assert base["constant"]["c_index"] == 0.5
    assert ours["survival/mae_uncensored"] < base["constant"]["mae_uncensored"]
    assert ours["survival/c_index"] > 0.6
    assert ours["survival/c_index"] > base["cox"]["c_index"] - 0.1
    assert np.isfinite(ours["survival/ibs"]) and np.isfinite(ours["survival/mean_auc"])
