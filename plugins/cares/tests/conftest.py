"""Switch on the SDK conformance kit for every cares component (offline scorers and models)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from asklepios_sdk.testing import Conformance, Override

TINY_VLM = Path(tempfile.mkdtemp(prefix="cares-kit-")) / "tiny-vlm"
FIXTURE = Path(tempfile.mkdtemp(prefix="cares-kit-")) / "fixture"


def _fixture_file() -> str:
    from asklepios_cares.fixture import write_fixture

    return str(write_fixture(FIXTURE, per_source=2)["ol3i"])


asklepios_conformance = Conformance(
    "asklepios_cares.hooks",
    overrides={
        "cares.hf_vlm": Override(
            params={"model_dir": str(TINY_VLM), "tiny_random": True, "max_new_tokens": 3}
        ),
        "cares.jsonl": Override(params={"file": _fixture_file()}),
        "cares.fixture": Override(params={"directory": str(FIXTURE), "per_source": 2}),
        "cares.toxicity": Override(params={"scorer": {"kind": "length_stub"}}),
        "cares.llm_judge": Override(params={"judge": {"kind": "constant", "reply": "8"}}),
    },
)
