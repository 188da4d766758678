"""Every example config's dataset builds, and its KM margins fit its time bins."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import yaml
from asklepios_sdk import BuildContext
from asklepios_unisurv.datasets import SksurvDataset
from asklepios_unisurv.margins import KMMarginWrapper
from asklepios_unisurv.params import KMMarginWrapperParams, SksurvDatasetParams

EXAMPLES = sorted(
    (Path(__file__).resolve().parents[3] / "examples" / "configs" / "unisurv").glob("*.yaml")
)


def _load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    parent = doc.pop("extends", None)
    if parent is None:
        return doc
    base = _load(path.parent / parent)
    base["data"] = {**base["data"], **doc.pop("data", {})}
    return {**base, **doc}


def test_one_example_per_bundled_dataset():
    names = typing.get_args(SksurvDatasetParams.model_fields["name"].annotation)
    assert sorted(p.stem for p in EXAMPLES) == sorted(names)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_dataset_and_margins_build(path):
    config = _load(path)
    spec = dict(config["data"]["dataset"])
    assert spec.pop("type") == "unisurv.sksurv"
    wrapper = next(w for w in config["data"]["wrappers"] if w["type"] == "unisurv.km_margin")
    params = {k: v for k, v in wrapper.items() if k != "type"}
    data = KMMarginWrapper(KMMarginWrapperParams(**params), BuildContext()).wrap(
        SksurvDataset(SksurvDatasetParams(**spec), BuildContext())
    )
    for name in ("train", "val", "test"):
        split = data.split(name)
        assert int(split.margin.max()) < spec["t_max"]
        assert split.weight.isfinite().all()
