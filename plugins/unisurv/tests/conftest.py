"""Shared fixtures of the unisurv suite, and the SDK conformance kit over every component."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from asklepios_sdk.testing import Conformance, Override, survival_facts

TINY = {"d_model": 8, "num_layers": 1, "num_heads": 2, "d_ff": 8}
T_MAX = 24
TINY_CSV = str(Path(__file__).parent / "data" / "tiny_survival.csv")


def _facts():
    facts = survival_facts(num_samples=24, num_features=6)
    return facts.replace(extras={"t_max": T_MAX, "unisurv.sorted_pairs": True})


def _survival_table(ctx):
    from asklepios_unisurv.datasets import SyntheticDataset
    from asklepios_unisurv.params import SyntheticDatasetParams

    return SyntheticDataset(SyntheticDatasetParams(num_samples=60, t_max=T_MAX), ctx)


asklepios_conformance = Conformance(
    "asklepios_unisurv.hooks",
    data=_facts(),
    overrides={
        "unisurv.transformer": Override(params=TINY),
        "unisurv.pdf_head": Override(params=TINY),
        "unisurv.chunk_cnn": Override(params={"in_channels": 2, "width": 15, "time_period": 4}),
        "unisurv.km_margin": Override(dataset=_survival_table),
        "unisurv.sorted_pairs": Override(dataset=_survival_table),
        "unisurv.csv": Override(params={"path": TINY_CSV, "t_max": T_MAX}),
        "unisurv.synthetic": Override(params={"num_samples": 60}),
        "unisurv.pairwise": Override(
            skip={
                "trainer-step": "needs partner_* fields from unisurv.sorted_pairs and the MMV "
                "loss; tests/test_samplers_pairs.py runs its step on such batches"
            }
        ),
    },
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
