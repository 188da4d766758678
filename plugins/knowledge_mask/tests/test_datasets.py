"""The CSV video dataset (§2: phases, frame selection, grouped split) and the synthetic demo set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from asklepios_knowledge_mask.datasets import FFAVideoDataset, SyntheticFFAVideo, select_frames
from asklepios_knowledge_mask.masks import FOVPreprocess, KnowledgeMask
from asklepios_knowledge_mask.params import (
    FFAVideoDatasetParams,
    FOVPreprocessParams,
    KnowledgeMaskParams,
    SyntheticFFAVideoParams,
)
from asklepios_sdk import BuildContext, ComponentError
from PIL import Image

CTX = BuildContext()
"""The build context of the components built here: CPU, seed 0, one process."""


def test_select_frames_properties() -> None:
    phases = np.array(["E"] * 6 + ["V"] * 3 + ["L"] * 5)
    levels = np.arange(14)[::-1].copy()  # time runs against row order
    for seed in range(20):
        picked = select_frames(phases, levels, np.random.default_rng(seed))
        assert len(np.unique(picked)) == len(picked)
        assert np.all(np.diff(levels[picked]) > 0)  # time order
        for phase in ("E", "V", "L"):
            count = np.sum(phases[picked] == phase)
            assert 1 <= count <= 4  # 4 draws with replacement, duplicates dropped
    # with replacement: across many draws some phase keeps fewer than 4 distinct rows
    counts = [len(select_frames(phases, levels, np.random.default_rng(s))) for s in range(50)]
    assert min(counts) < 12 and max(counts) <= 12


def _write_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    yy, xx = np.mgrid[0:32, 0:32]
    disk = (yy - 16) ** 2 + (xx - 16) ** 2 <= 13**2
    for patient in range(20):
        for eye in ("OD", "OS"):
            pid_eye = f"p{patient}_{eye}"
            cf = np.zeros((32, 32, 3), np.uint8)
            cf[disk] = (120, 90, 40)
            Image.fromarray(cf).save(tmp_path / f"{pid_eye}_cf.png")
            level = 0
            for phase in ("A", "C", "AV", "E", "L"):
                for k in range(3):
                    frame = np.zeros((32, 32, 3), np.uint8)
                    frame[disk] = rng.integers(5, 255)
                    name = f"{pid_eye}_{phase}{k}.png"
                    Image.fromarray(frame).save(tmp_path / name)
                    rows.append(f"{pid_eye},{patient},{phase},{level},{pid_eye}_cf.png,{name}")
                    level += 1
    csv = tmp_path / "data.csv"
    csv.write_text("pid_eye,orgid,Phase,level_1,co_rigid,fa_rigid\n" + "\n".join(rows) + "\n")
    return csv


def test_csv_dataset_phases_split_and_items(tmp_path: Path) -> None:
    data = FFAVideoDataset(FFAVideoDatasetParams(csv_path=str(_write_csv(tmp_path))), CTX)
    assert set(data.table["Phase"]) == {"V", "E", "L"}  # A, C dropped; AV renamed V
    eyes = {name: set(data.eyes[name]) for name in ("train", "val", "test")}
    assert sum(len(e) for e in eyes.values()) == 40
    assert not (eyes["train"] & eyes["val"]) and not (eyes["val"] & eyes["test"])
    patients = {name: {e.split("_")[0] for e in es} for name, es in eyes.items()}
    assert not (patients["train"] & patients["val"]) and not (patients["train"] & patients["test"])
    assert len(eyes["train"]) >= 30 and eyes["val"] and eyes["test"]
    item = data.split("val")[0]
    m = item["video"].shape[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.uint8
    assert item["video"].shape == (m, 3, 32, 32) and 3 <= m <= 9
    assert item["meta"]["levels"] == sorted(item["meta"]["levels"])
    again = data.split("val")[0]
    assert torch.equal(again["video"], item["video"])  # evaluation frames are fixed
    out = KnowledgeMask(KnowledgeMaskParams(), CTX)(
        FOVPreprocess(FOVPreprocessParams(size=16, random_crop=False), CTX)(item)
    )
    assert out["knowledge_mask"].shape == (1, 16, 16)
    assert data.facts().task == "generation" and data.facts().num_samples == len(eyes["train"])


def test_per_phase_sets_how_many_frames_each_phase_contributes(tmp_path: Path) -> None:
    csv = str(_write_csv(tmp_path))
    one = FFAVideoDataset(FFAVideoDatasetParams(csv_path=csv, per_phase=1), CTX).split("val")[0]
    assert one["video"].shape[0] == 3  # one draw from each of the phases V, E, L
    many = FFAVideoDataset(FFAVideoDatasetParams(csv_path=csv, per_phase=30), CTX).split("val")[0]
    assert many["video"].shape[0] == 9  # 30 draws per phase cover its 3 frames


def test_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="does not exist"):
        FFAVideoDataset(FFAVideoDatasetParams(csv_path=str(tmp_path / "none.csv")), CTX)
    bad = tmp_path / "bad.csv"
    bad.write_text("pid_eye,Phase\nx,E\n")
    with pytest.raises(ComponentError, match="lacks columns"):
        FFAVideoDataset(FFAVideoDatasetParams(csv_path=str(bad)), CTX)


def test_synthetic_dataset_is_labelled_and_deterministic() -> None:
    data = SyntheticFFAVideo(SyntheticFFAVideoParams(size=48, num_frames=4), CTX)
    assert data.facts().extras["synthetic"] is True
    train = data.split("train")
    assert len(train) == 4 and len(data.split("val")) == 1 and len(data.split("test")) == 1
    a, b = train[1], train[1]
    assert torch.equal(a["video"], b["video"]) and a["meta"]["synthetic"] is True
    assert a["image"].shape == (3, 48, 48) and a["video"].shape == (4, 3, 48, 48)
    assert not torch.equal(train[0]["image"], train[1]["image"])  # another orientation
    params = FOVPreprocessParams(size=32, random_crop=False, flip_p=0.0)
    out = KnowledgeMask(KnowledgeMaskParams(), CTX)(FOVPreprocess(params, CTX)(a))
    assert 0.0 < float(out["knowledge_mask"].mean()) < 0.9  # vessels and leakage change
