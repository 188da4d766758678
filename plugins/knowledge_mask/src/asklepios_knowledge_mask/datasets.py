"""Fundus2Video's CSV video dataset and a SYNTHETIC demo dataset (§2).

One item is one eye: the registered colour-fundus photograph ``image`` (uint8 ``(3, H, W)``) and
its FFA frames ``video`` (uint8 ``(M, 3, H, W)``, time order), raw, for
``knowledge_mask.fov_preprocess`` and ``knowledge_mask.mask`` to turn into network inputs.
``M`` varies between eyes, so loaders use ``batch_size: 1`` (one video per step, as the original).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset

from asklepios_knowledge_mask.params import FFAVideoDatasetParams, SyntheticFFAVideoParams
from asklepios_knowledge_mask.synthetic import synthetic_fundus_video

__all__ = [
    "FFAVideoDataset",
    "SyntheticFFAVideo",
    "grouped_split",
    "select_frames",
]

COLUMNS = ("pid_eye", "orgid", "Phase", "level_1", "co_rigid", "fa_rigid")


def grouped_split(groups: np.ndarray, seed: int = 7, holdout: float = 0.1) -> dict[str, np.ndarray]:
    """Split row indices by group: 90 % train, the rest halved into val and test (grouped).

    Both cuts are scikit-learn ``GroupShuffleSplit`` with ``random_state`` 7, as ``train.py``.
    """
    from sklearn.model_selection import GroupShuffleSplit

    rows = np.arange(len(groups))
    outer = GroupShuffleSplit(n_splits=1, test_size=holdout, random_state=seed)
    train, rest = next(outer.split(rows, groups=groups))
    inner = GroupShuffleSplit(n_splits=1, test_size=0.5, random_state=seed)
    val, test = next(inner.split(rest, groups=groups[rest]))
    return {"train": train, "val": rest[val], "test": rest[test]}


def select_frames(
    phases: np.ndarray, levels: np.ndarray, rng: np.random.Generator, per_phase: int = 4
) -> np.ndarray:
    """Draw ``per_phase`` rows per phase with replacement, drop duplicates, sort by time.

    Args:
        phases: phase label of each row of one eye.
        levels: frame order (``level_1``) of each row.
        rng: random generator of this draw.
        per_phase: rows drawn per phase.

    Returns:
        Indices of the selected rows in time order.
    """
    chosen = [
        rng.choice(np.flatnonzero(phases == phase), size=per_phase, replace=True)
        for phase in np.unique(phases)
    ]
    unique = np.unique(np.concatenate(chosen))
    return unique[np.argsort(levels[unique], kind="stable")]


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise ComponentError(f"knowledge_mask.ffa_video: image file {str(path)!r} does not exist")
    with Image.open(path) as img:
        return np.array(img.convert("RGB"))


class _EyeSplit(torch.utils.data.Dataset):
    """The eyes of one split; frames are re-drawn on every access in training."""

    def __init__(
        self, table: Any, eyes: list[str], root: Path, train: bool, seed: int, per_phase: int
    ) -> None:
        self.table, self.eyes, self.root, self.train, self.seed = table, eyes, root, train, seed
        self.per_phase = per_phase

    def __len__(self) -> int:
        return len(self.eyes)

    def __getitem__(self, index: int) -> dict[str, Any]:
        eye = self.eyes[index]
        rows = self.table[self.table["pid_eye"] == eye]
        if self.train:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
        else:  # evaluation: the same frames every time
            rng = np.random.default_rng([self.seed, index])
        chosen = select_frames(
            rows["Phase"].to_numpy(), rows["level_1"].to_numpy(), rng, self.per_phase
        )
        picked = rows.iloc[chosen]
        cf = _read_rgb(self.root / str(picked["co_rigid"].iloc[0]))
        frames = [_read_rgb(self.root / str(p)) for p in picked["fa_rigid"]]
        if any(f.shape != cf.shape for f in frames):
            raise ComponentError(
                f"knowledge_mask.ffa_video: eye {eye!r} has frames whose size differs from its CF "
                f"image {cf.shape}; the images must be co-registered (the '*_rigid' columns)"
            )
        video = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()
        return {
            "image": torch.from_numpy(cf).permute(2, 0, 1).contiguous(),
            "video": video,
            "meta": {"pid_eye": str(eye), "levels": picked["level_1"].tolist()},
        }


class FFAVideoDataset(Dataset):
    """Read Fundus2Video's CSV of registered CF/FFA frames: one item per eye, grouped splits.

    Rows of phases ``A`` and ``C`` are dropped and ``AV`` becomes ``V``; the split is grouped by
    ``orgid`` (90 / 5 / 5). Each access draws 4 rows per phase with replacement, drops duplicates
    and sorts by ``level_1`` (evaluation splits draw the same frames every time).
    """

    def __init__(self, params: FFAVideoDatasetParams, ctx: BuildContext) -> None:
        import pandas as pd

        self.params = params
        path = Path(params.csv_path).expanduser()
        if not path.is_file():
            raise ComponentError(
                f"knowledge_mask.ffa_video: CSV {str(path)!r} does not exist; the Fundus2Video "
                "data are not public: point csv_path at your own CSV with columns "
                f"{', '.join(COLUMNS)}, or use knowledge_mask.synthetic_ffa_video for a demo"
            )
        table = pd.read_csv(path)
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise ComponentError(
                f"knowledge_mask.ffa_video: {str(path)!r} lacks columns {missing}; expected "
                f"{list(COLUMNS)}"
            )
        table = table[~table["Phase"].isin(params.drop_phases)].copy()
        table["Phase"] = table["Phase"].replace(params.rename_phases)
        table = table.reset_index(drop=True)
        if table.empty:
            raise ComponentError(f"knowledge_mask.ffa_video: no rows left in {str(path)!r}")
        self.table = table
        self.root = Path(params.root).expanduser() if params.root else path.parent
        rows = grouped_split(table["orgid"].to_numpy(), params.split_seed)
        self.eyes = {
            name: list(dict.fromkeys(table["pid_eye"].iloc[idx].tolist()))
            for name, idx in rows.items()
        }

    def split(self, name: str) -> torch.utils.data.Dataset:
        if name not in self.eyes:
            raise ComponentError(f"knowledge_mask.ffa_video: unknown split {name!r}")
        return _EyeSplit(
            self.table,
            self.eyes[name],
            self.root,
            name == "train",
            self.params.split_seed,
            self.params.per_phase,
        )

    def facts(self) -> DataFacts:
        return DataFacts(
            task="generation",
            num_samples=len(self.eyes["train"]),
            in_channels=3,
            extras={"synthetic": False, "phases": sorted(self.table["Phase"].unique())},
        )


class _SyntheticSplit(torch.utils.data.Dataset):
    def __init__(self, params: SyntheticFFAVideoParams, offset: int, count: int) -> None:
        self.params, self.offset, self.count = params, offset, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        p = self.params
        item = self.offset + index
        cf, video = synthetic_fundus_video(p.size, p.num_frames, seed=p.seed * 100_003 + item)
        turns = item % 4  # variety: the same photograph in 4 orientations
        cf, video = cf.rot90(turns, (-2, -1)), video.rot90(turns, (-2, -1))
        return {
            "image": cf.contiguous(),
            "video": video.contiguous(),
            "meta": {"pid_eye": f"synthetic-{item}", "synthetic": True},
        }


class SyntheticFFAVideo(Dataset):
    """Make SYNTHETIC angiography-like videos from scikit-image's real retina photo (demo).

    The CF image is the real photograph (in 4 orientations); the "FFA" frames are made from it
    (vessel filling, background flush, one late-brightening leakage blob). Not angiography.
    """

    def __init__(self, params: SyntheticFFAVideoParams, ctx: BuildContext) -> None:
        self.params = params

    def split(self, name: str) -> torch.utils.data.Dataset:
        p = self.params
        sizes = {"train": (0, p.train), "val": (p.train, p.val), "test": (p.train + p.val, p.test)}
        if name not in sizes:
            raise ComponentError(f"knowledge_mask.synthetic_ffa_video: unknown split {name!r}")
        return _SyntheticSplit(p, *sizes[name])

    def facts(self) -> DataFacts:
        p = self.params
        return DataFacts(
            task="generation",
            num_samples=p.train,
            in_channels=3,
            extras={"synthetic": True, "num_frames": p.num_frames},
        )
