"""Split builder reproduces MONICA's counts (§8.5); digits_lt recipe; split lists and label maps."""

from __future__ import annotations

import numpy as np
import pytest
from _fixtures import write_split_lists
from asklepios_longtail.datasets import (
    DigitsLT,
    SplitList,
    build_long_tailed_split,
    digits_counts,
    long_tail_profile,
    read_label_map,
    reindex_by_frequency,
)
from asklepios_longtail.params import DigitsLTParams, SplitListParams
from asklepios_longtail.split_list_convert import main as convert_main
from asklepios_sdk import ComponentError


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((8, 100, 5000, "ceil"), [5000, 2590, 1342, 695, 360, 187, 97, 51]),
        ((8, 200, 5000, "ceil"), [5000, 2346, 1101, 517, 243, 114, 54, 25]),
        ((8, 500, 5000, "ceil"), [5000, 2058, 847, 349, 144, 60, 25, 11]),
        ((9, 100, 10000, "round"), [10000, 5623, 3162, 1778, 1000, 562, 316, 178, 100]),
        (
            (14, 20, 998, "round"),
            [998, 793, 629, 500, 397, 315, 250, 199, 158, 125, 100, 79, 63, 50],
        ),
    ],
)
def test_profile_reproduces_monica_counts(args, expected):
    assert long_tail_profile(*args) == expected


def test_profile_caps_at_natural_counts_and_digits_counts():
    natural = [5000, 100, 1500, 10]
    assert long_tail_profile(4, 100, 5000, "round", natural) == [5000, 100, 232, 10]
    assert digits_counts() == [120, 72, 43, 26, 15, 9, 6, 3, 2, 1]


def test_build_split_and_reindex():
    labels = np.array([2] * 50 + [0] * 30 + [1] * 40)
    new, order = reindex_by_frequency(labels)
    assert order.tolist() == [2, 1, 0] and np.bincount(new).tolist() == [50, 40, 30]
    parts = build_long_tailed_split(new, 10, held_out_per_class=(5, 5), seed=1)
    assert np.bincount(new[parts["train"]]).tolist() == [40, 13, 4]
    assert np.bincount(new[parts["held_0"]]).tolist() == [5, 5, 5]
    assert not set(parts["train"]) & set(parts["held_1"])


def test_digits_lt_recipe():
    data = DigitsLT(DigitsLTParams(seed=3), None)
    facts = data.facts()
    assert facts.class_counts == (120, 72, 43, 26, 15, 9, 6, 3, 2, 1)
    assert facts.num_samples == 297 and facts.num_features == 64
    assert np.bincount(data.labels("test")).tolist() == [50] * 10
    sample = data.split("train")[0]
    assert sample["image"].shape == (64,) and 0 <= float(sample["image"].max()) <= 1
    again = DigitsLT(DigitsLTParams(seed=3), None)
    assert np.array_equal(data.labels("train"), again.labels("train"))
    other = DigitsLT(DigitsLTParams(seed=4), None)
    assert not np.array_equal(data.split("test").images, other.split("test").images)
    image = DigitsLT(DigitsLTParams(as_image=True, val_per_class=0), None)
    assert image.split_names == ("train", "test")
    assert image.split("test")[0]["image"].shape == (1, 8, 8)


def test_split_list_reads_lists_and_csv(tmp_path):
    root, lists = write_split_lists(tmp_path)
    data = SplitList(
        SplitListParams(root=str(root), lists=str(lists), label_map="labels.csv", image_size=4),
        None,
    )
    assert data.facts().class_counts == (5, 3, 2)
    sample = data.split("val")[1]
    assert sample["image"].shape == (3, 4, 4) and int(sample["label"]) == 1


def test_pickled_label_map_needs_trust_and_converts(tmp_path, capsys):
    _, lists = write_split_lists(tmp_path, pickle_map=True)
    with pytest.raises(ComponentError, match="trust_pickle"):
        read_label_map(lists / "dic.npy")
    trusted = read_label_map(lists / "dic.npy", trust_pickle=True)
    assert convert_main([str(lists / "dic.npy"), str(tmp_path / "out.csv")]) == 2
    assert convert_main([str(lists / "dic.npy"), str(tmp_path / "out.csv"), "--trust-pickle"]) == 0
    assert read_label_map(tmp_path / "out.csv") == trusted
    assert "wrote" in capsys.readouterr().out


def test_long_tailed_wrapper_reproduces_dermamnist_counts():
    import torch
    from asklepios_longtail.datasets import LongTailed
    from asklepios_longtail.params import LongTailedParams
    from asklepios_sdk import DataFacts, Dataset

    natural = {5: 4693, 4: 779, 2: 769, 1: 359, 0: 228, 6: 99, 3: 80}  # DermaMNIST train

    class Derma(Dataset):
        def __init__(self):
            self.y = np.concatenate([np.full(n, c) for c, n in sorted(natural.items())])

        def split(self, name):
            y = self.y if name == "train" else np.arange(7)
            return [{"image": torch.zeros(1), "label": torch.tensor(v)} for v in y]

        def facts(self):
            return DataFacts(num_classes=7, class_names=tuple("abcdefg"))

        def labels(self, name):
            return self.y if name == "train" else np.arange(7)

    wrapped = LongTailed(LongTailedParams(), None).wrap(Derma())
    facts = wrapped.facts()
    assert facts.class_counts == (4693, 779, 769, 359, 218, 99, 47)
    assert facts.class_names == tuple("fecbagd")
    train = wrapped.split("train")
    assert len(train) == sum(facts.class_counts)
    assert [int(train[i]["label"]) for i in range(3)] == wrapped.labels("train")[:3].tolist()
    assert [int(s["label"]) for s in wrapped.split("test")] == [4, 3, 2, 6, 1, 0, 5]
