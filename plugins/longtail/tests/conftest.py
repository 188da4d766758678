"""Turn on the SDK conformance kit for every longtail component."""

from __future__ import annotations

import atexit
import shutil
import tempfile

from _fixtures import write_split_lists
from asklepios_sdk.testing import Conformance, Override

_TMP = tempfile.mkdtemp(prefix="longtail-splits-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
_ROOT, _LISTS = write_split_lists(_TMP)

asklepios_conformance = Conformance(
    "asklepios_longtail.hooks",
    overrides={
        "longtail.collect": Override(
            skip={
                "trainer-step": "collects features for longtail.ncm and trains nothing by "
                "design; tested in tests/test_trainers.py"
            }
        ),
        "longtail.byol": Override(
            skip={
                "trainer-step": "needs a second augmented view in the batch, which the kit's "
                "example batch lacks; tested in tests/test_ssl.py"
            }
        ),
        "longtail.mocov2": Override(
            skip={
                "trainer-step": "needs a second augmented view in the batch, which the kit's "
                "example batch lacks; tested in tests/test_ssl.py"
            }
        ),
        "longtail.sade_resnet": Override(
            params={"layers": (1, 1, 1, 1), "planes": (4, 4, 8, 8), "num_experts": 2}
        ),
        "longtail.rsg_resnext": Override(
            params={"model_name": "resnet10t", "n_center": 2, "contrastive_dim": 8}
        ),
        "longtail.split_list": Override(
            params={
                "root": str(_ROOT),
                "lists": str(_LISTS),
                "label_map": "labels.csv",
                "image_size": 8,
            }
        ),
    },
)
