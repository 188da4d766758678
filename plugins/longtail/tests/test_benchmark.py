"""The long-tailed digits benchmark's qualitative ordering (spec §8.5), on 5 seeds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# the benchmark script is the repository's bench/longtail_digits.py (issue 5); appended, so the
# other bench scripts there never shadow an installed module
sys.path.append(str(Path(__file__).resolve().parents[3] / "bench"))

from asklepios_longtail.datasets import digits_counts
from longtail_digits import METHODS, scores, trained_logits

SEEDS = range(5)


@pytest.mark.slow
def test_digits_ordering_over_five_seeds():
    torch.set_num_threads(1)
    table: dict[str, list[tuple[float, float]]] = {name: [] for name in ("ERM", "PosthocLA")}
    for seed in SEEDS:
        logits, labels = trained_logits(METHODS["ERM"], seed)
        table["ERM"].append(scores(logits, labels))
        counts = torch.tensor(digits_counts(), dtype=torch.float32)
        adjusted = logits - torch.log(counts / counts.max() + 1e-12)
        table["PosthocLA"].append(scores(adjusted, labels))
    for name in ("BalancedSoftmax", "LA (MONICA sign)"):
        table[name] = [scores(*trained_logits(METHODS[name], seed)) for seed in SEEDS]
    mean = {name: np.mean(values, axis=0) for name, values in table.items()}
    acc = {name: value[0] for name, value in mean.items()}
    few = {name: value[1] for name, value in mean.items()}
    assert acc["BalancedSoftmax"] > acc["ERM"] + 0.02, mean
    assert acc["PosthocLA"] > acc["ERM"] + 0.02, mean
    assert few["BalancedSoftmax"] > few["ERM"] + 0.05, mean
    assert acc["LA (MONICA sign)"] < acc["ERM"], mean
