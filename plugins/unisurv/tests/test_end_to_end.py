"""End to end on GBSG2 through `asklepios run`, against CoxPH and a constant KM predictor.

The baselines follow the reference recipe of spec §6 check 5, written here from scikit-survival
and lifelines (not through the plugin's data code): a stratified 20 % test split
(``random_state=42``), CoxPH (penalizer 0.01, one-hot covariates) and the Kaplan–Meier curve fit
on all non-test rows, and a constant predictor equal to the KM restricted mean up to T_max = 96
months. The README's table is checked against these numbers and the run's.
"""

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

README = Path(__file__).resolve().parents[1] / "README.md"
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


def _reference() -> dict[str, object]:
    """Fit the reference recipe's baselines; return their test metrics and the split."""
    from lifelines import CoxPHFitter, KaplanMeierFitter
    from lifelines.utils import concordance_index, restricted_mean_survival_time
    from sklearn.model_selection import train_test_split
    from sksurv.datasets import load_gbsg2
    from sksurv.preprocessing import OneHotEncoder

    covariates, outcome = load_gbsg2()
    table = OneHotEncoder().fit_transform(covariates).astype(float)
    months = (outcome["time"] // 30).astype(int)
    events = outcome["cens"].astype(int)
    rest, test = train_test_split(
        np.arange(len(events)), test_size=0.2, random_state=42, stratify=events
    )
    frame = table.assign(T=months, E=events)
    cox = CoxPHFitter(penalizer=0.01).fit(frame.iloc[rest], "T", "E")
    risk = cox.predict_partial_hazard(frame.iloc[test]).to_numpy()
    km = KaplanMeierFitter().fit(months[rest], events[rest])
    restricted_mean = float(restricted_mean_survival_time(km, t=96))
    t, e = months[test], events[test]
    return {
        "rest": (months[rest], events[rest]),
        "test": (t, e),
        "restricted_mean": restricted_mean,
        "cox": {"c_index": float(concordance_index(t, -risk, e))},
        "constant": survival_metrics(t, e, np.full(len(t), restricted_mean)),
    }


def _readme_row(label: str) -> list[str]:
    """Return the cells of the README results row whose first cell starts with ``label``."""
    section = README.read_text().split("## Results seen in the tests", 1)[1]
    for line in section.splitlines():
        if line.startswith(f"| {label}"):
            return [cell.strip() for cell in line.strip().strip("|").split("|")]
    raise AssertionError(f"README has no results row starting with {label!r}")


def test_readme_baselines_follow_the_reference_recipe():
    ref = _reference()
    t, e = ref["test"]
    assert (len(t), int(e.sum())) == (138, 60)
    # the plugin's 20 % split holds the same test rows; its KM curve gives the same mean
    data = SksurvDataset(
        SksurvDatasetParams(name="gbsg2", t_max=96, test_size=0.2, val_size=0.1), BuildContext()
    )
    test = data.split("test")
    ours = sorted(zip(test.times.tolist(), test.events.tolist(), strict=True))
    assert ours == sorted(zip(t.tolist(), e.tolist(), strict=True))
    rest_t, rest_e = ref["rest"]
    curve = fit_km(rest_t, rest_e)
    steps = float(curve.survival_at(np.arange(96)).sum())  # Σ_k S_KM(k), the model's ŷ of KM
    assert steps == pytest.approx(ref["restricted_mean"], rel=1e-12)
    assert float(curve.tail[0]) < ref["restricted_mean"] - 3  # the trapezoid area is not it
    constant = ref["constant"]
    assert constant["c_index"] == 0.5
    assert _readme_row("CoxPH")[1] == f"{ref['cox']['c_index']:.3f}"
    label, *cells = _readme_row("constant")
    assert f"{ref['restricted_mean']:.1f} months" in label
    assert cells == ["0.500", f"{constant['mae_uncensored']:.1f}", f"{constant['mae_hinge']:.1f}"]


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
    ref = _reference()
    print("unisurv", ours, "\nreference baselines", ref["cox"], ref["constant"])
    assert ours["survival/mae_uncensored"] < ref["constant"]["mae_uncensored"]
    assert ours["survival/c_index"] > 0.6
    assert ours["survival/c_index"] > ref["cox"]["c_index"] - 0.1
    assert np.isfinite(ours["survival/ibs"]) and np.isfinite(ours["survival/mean_auc"])
    # the README's UniSurv row is this run (CPU float results may move in the last digits)
    c_index, mae_u, mae_h = (float(cell) for cell in _readme_row("UniSurv")[1:])
    assert ours["survival/c_index"] == pytest.approx(c_index, abs=0.01)
    assert ours["survival/mae_uncensored"] == pytest.approx(mae_u, abs=0.5)
    assert ours["survival/mae_hinge"] == pytest.approx(mae_h, abs=0.5)
