"""Turn on the SDK conformance kit for every longtail component."""

from __future__ import annotations

from asklepios_sdk.testing import Conformance, Override

asklepios_conformance = Conformance(
    "asklepios_longtail.hooks",
    overrides={
        "longtail.collect": Override(
            skip={
                "trainer-step": "collects features for longtail.ncm and trains nothing by "
                "design; tested in tests/test_trainers.py"
            }
        ),
    },
)
