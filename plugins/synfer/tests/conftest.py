"""Shared fixtures of the synfer tests, and the SDK conformance kit with tiny sizes."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from asklepios_sdk.testing import Conformance, Override

sys.path.insert(0, str(Path(__file__).parent))

from _tiny import classifier_ref, save_classifier, write_generated

# The tensors here are tiny: one intra-op thread avoids thread hand-off costs on a shared machine.
torch.set_num_threads(1)

_KIT = Path(tempfile.mkdtemp(prefix="synfer_kit_"))
atexit.register(shutil.rmtree, _KIT, ignore_errors=True)


def _fetext_dir() -> Path:
    from asklepios_synfer.datasets import write_fetext
    from asklepios_synfer.params import DigitsFETextParams

    return write_fetext(_KIT / "fetext", DigitsFETextParams(classes=4, per_class=3))


_CLASSIFIER = save_classifier(_KIT / "classifier.pt", num_classes=3)
_GENERATED = write_generated(_KIT / "generated", count=8, classes=3)


def _ldm(ctx):
    from asklepios_synfer.ldm import LatentDiffusion
    from asklepios_synfer.params import LatentDiffusionParams

    return LatentDiffusion(LatentDiffusionParams(), ctx)


def _ldm_au(ctx):
    from asklepios_synfer.au_adapter import AUAdapter
    from asklepios_synfer.params import AUAdapterParams

    return AUAdapter(AUAdapterParams(), ctx).wrap(_ldm(ctx))


asklepios_conformance = Conformance(
    "asklepios_synfer.hooks",
    overrides={
        "synfer.au_adapter": Override(model=_ldm),
        "synfer.guided_generation": Override(model=_ldm_au),
        "synfer.diffusion_train": Override(model=_ldm_au),
        "synfer.fetext": Override(params={"roots": [str(_fetext_dir())], "image_size": 16}),
        "synfer.digits_fetext": Override(params={"per_class": 4, "classes": 3}),
        "synfer.requests": Override(
            params={
                "count": 6,
                "layouts": {"type": "synfer.digits_fetext", "per_class": 4, "classes": 3},
                "class_names": ["a", "b", "c"],
                "au_source": "class_mean",
            }
        ),
        "synfer.synthetic_fer": Override(params={"path": str(_GENERATED), "val_fraction": 0.25}),
        "synfer.label_calibrator": Override(
            params={"models": [classifier_ref(_CLASSIFIER, 3)], "tau_conf": 0.3, "min_votes": 1}
        ),
        "synfer.generation_quality": Override(
            params={
                "classifier": classifier_ref(_CLASSIFIER, 3),
                "path": str(_GENERATED),
                "feature_extractor": classifier_ref(_CLASSIFIER, 3),
                "reference": {"type": "core.digits", "image_size": 16, "channels": 3},
            },
        ),
    },
)


@pytest.fixture(scope="session")
def kit_dir() -> Path:
    """Return the session's scratch folder (tiny classifier, FEText digits, generated set)."""
    return _KIT
