"""Shared fixtures of the ophnet suite, and the SDK conformance kit over every component.

The kit builds the file datasets from tiny fixture files written here (no OphNet data ship with
the plugin); every other component gets sequence facts: 6-wide features, 3 segment classes and
a background class.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from asklepios_sdk import DataFacts
from asklepios_sdk.testing import Conformance, Override

sys.path.insert(0, str(Path(__file__).parent))

from ophnet_files import write_loca_fixture, write_tal_fixture

# The tensors here are tiny: intra-op threads only add contention (50x slower on a loaded
# 2-core machine), so the suite runs single-threaded, and so do the runs it starts.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

_ROOT = Path(tempfile.mkdtemp(prefix="ophnet-kit-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
LOCA, SURGERY = write_loca_fixture(_ROOT / "csv")
TAL_JSON, TAL_FEATURES = write_tal_fixture(_ROOT / "tal")

FACTS = DataFacts(
    task="temporal_localization",
    num_samples=24,
    num_classes=4,
    class_names=("0", "1", "2", "background"),
    num_features=6,
    in_channels=6,
    extras={
        "ophnet.level": "phase",
        "ophnet.segment_classes": 3,
        "ophnet.background_class": 3,
    },
)
TINY_MSTCN = {"num_stages": 2, "num_layers": 3, "num_f_maps": 8}
TINY_ACTIONFORMER = {"embd_dim": 16, "head_dim": 16, "mha_win_size": 5}


def _annotations(ctx):
    from asklepios_ophnet.datasets import AnnotationsDataset
    from asklepios_ophnet.params import AnnotationsDatasetParams

    return AnnotationsDataset(AnnotationsDatasetParams(file=str(LOCA)), ctx)


asklepios_conformance = Conformance(
    "asklepios_ophnet.hooks",
    data=FACTS,
    overrides={
        "ophnet.annotations": Override(params={"file": str(LOCA), "surgery_file": str(SURGERY)}),
        "ophnet.tal_features": Override(
            params={"annotations": str(TAL_JSON), "features_dir": str(TAL_FEATURES)}
        ),
        "ophnet.challenge_labels": Override(dataset=_annotations),
        "ophnet.synthetic": Override(
            params={
                "train": 4,
                "val": 2,
                "test": 2,
                "min_length": 24,
                "max_length": 32,
                "segment_length": (2, 5),
                "feature_dim": 6,
                "num_classes": 3,
            }
        ),
        "ophnet.mstcn": Override(params=TINY_MSTCN),
        "ophnet.actionformer": Override(params=TINY_ACTIONFORMER),
    },
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
