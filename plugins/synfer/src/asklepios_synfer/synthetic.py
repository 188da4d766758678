"""Training on what was generated: the synthetic FER set, alone or mixed with real data (§2.6).

``synfer.synthetic_fer`` reads a generated folder (an earlier generation stage of the run, or
another run's folder), optionally calibrates its labels with the ensemble rule of
``synfer.label_calibrator`` (members' probabilities cached in the folder), keeps the first
``scale × |real train|`` of the items calibration kept (1× and 5× in the paper), and serves them
as the training split, with the real training split added when ``mix_real``. The real
dataset's val/test splits are the evaluation splits; without real data a ``val_fraction`` of the
synthetic items is held out.
Samples are ``{"image", "label", "synthetic"}``, the synthetic images converted to the real
images' channels and size. In soft calibration mode every sample also has ``soft_label``: p̄ for
an undecided synthetic image, the one-hot of ``label`` for the others and for real samples, so
mixed batches collate; train them with ``loss: {type: synfer.soft_ce}``, which reads it.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, ComponentError, DataFacts, Dataset
from asklepios_sdk.components import build_component
from asklepios_sdk.io import write_atomic
from asklepios_sdk.synthesis import GeneratedSplit, generated_dir, read_generated

from asklepios_synfer.calibrator import (
    calibrate,
    guidance_classifiers,
    manifest_guidance,
    warn_guidance_members,
)
from asklepios_synfer.classifiers import build_classifier
from asklepios_synfer.params import LabelCalibratorParams, SyntheticFERParams

__all__ = ["SyntheticFER", "member_probabilities"]


def member_probabilities(
    folder: Path,
    records: list[dict[str, Any]],
    params: LabelCalibratorParams,
    ctx: BuildContext,
    batch_size: int = 64,
) -> torch.Tensor:
    """Return the members' probabilities ``[M, N, K]`` for ``records``, cached in ``folder``."""
    members = [
        build_classifier(ref, ctx, f"synfer.synthetic_fer.calibrator.models.{i}")
        for i, ref in enumerate(params.models)
    ]
    key = json.dumps([[m.model_id for m in members], [r["index"] for r in records]])
    cache = folder / f"calibration-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if cache.is_file():
        return torch.tensor(json.loads(cache.read_text()))
    split = GeneratedSplit(folder, records)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(split), batch_size):
            images = torch.stack(
                [split[i]["image"] for i in range(start, min(len(split), start + batch_size))]
            ).to(ctx.device)
            chunks.append(torch.stack([m(images).float().softmax(dim=1).cpu() for m in members]))
    probs = torch.cat(chunks, dim=1) if chunks else torch.zeros(len(members), 0, 1)
    write_atomic(cache, json=probs.tolist())
    return probs


class _Unified(torch.utils.data.Dataset):
    """Samples as ``{image, label, synthetic[, soft_label]}``, images in one shape."""

    def __init__(
        self,
        inner: torch.utils.data.Dataset,
        synthetic: bool,
        shape: tuple[int, ...] | None,
        num_classes: int,
        soft: bool,
    ) -> None:
        self.inner, self.synthetic, self.shape = inner, synthetic, shape
        self.num_classes, self.soft = num_classes, soft

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.inner[index]
        image = sample["image"].float()
        if self.shape is not None and tuple(image.shape) != self.shape:
            channels, height, width = self.shape
            if image.shape[0] != channels:
                image = image.mean(0, keepdim=True) if channels == 1 else image.repeat(3, 1, 1)
            if image.shape[-2:] != (height, width):
                image = F.interpolate(image[None], size=(height, width), mode="bilinear")[0]
        out = {"image": image, "label": int(sample["label"]), "synthetic": self.synthetic}
        if self.soft:
            soft = sample.get("soft_label")
            out["soft_label"] = (
                soft.float()
                if soft is not None
                else F.one_hot(torch.tensor(out["label"]), self.num_classes).float()
            )
        return out


class SyntheticFER(Dataset):
    """Serve generated images with calibrated labels, alone or mixed with real data."""

    def __init__(self, params: SyntheticFERParams, ctx: BuildContext) -> None:
        where = "synfer.synthetic_fer"
        members = f"{where} (stage {ctx.stage!r}): calibrator.models"
        calibrator = params.calibrator
        if calibrator is not None and params.stage is not None:
            guidance = guidance_classifiers(ctx, params.stage)
            warn_guidance_members(calibrator.models, guidance, ctx, members)
        folder = generated_dir(ctx, stage=params.stage, path=params.path, where=where)
        if calibrator is not None and params.path is not None:
            guidance = manifest_guidance(folder, str(folder))
            warn_guidance_members(calibrator.models, guidance, ctx, members)
        records = [r for r in read_generated(folder, where) if r.get("label") is not None]
        if not records:
            raise ComponentError(f"{where}: {folder} holds no labelled items")
        real: Dataset | None = None
        if params.real is not None:
            spec = dict(params.real)
            kind = spec.pop("type", None)
            if not kind:
                raise ComponentError(f"{where}: real needs a dataset 'type'")
            real = build_component("dataset", kind, spec, ctx, where=f"{where}.real")
        real_facts = real.facts() if real is not None else None
        num_classes = params.num_classes or (real_facts.num_classes if real_facts else None)
        num_classes = num_classes or 1 + max(int(r["label"]) for r in records)
        wanted: int | None = None
        if params.scale is not None and real is not None:
            wanted = math.floor(params.scale * len(real.split("train")))  # type: ignore[arg-type]
            if wanted > len(records):
                raise ComponentError(
                    f"{where}: scale {params.scale} needs {wanted} synthetic items; {folder} "
                    f"has {len(records)}; generate more or lower the scale"
                )
        labels = [int(r["label"]) for r in records]
        generated = len(records)
        soft: list[list[float]] | None = None
        self.calibration: dict[str, float] = {}
        if calibrator is not None and calibrator.models:
            probs = member_probabilities(folder, records, calibrator, ctx)
            if calibrator.soft and probs.shape[2] != num_classes:
                raise ComponentError(
                    f"{where}: calibrator.soft serves the members' mean probabilities as "
                    f"soft_label, but the members give {probs.shape[2]} classes and the data "
                    f"{num_classes}; set calibrator.models[].num_classes to {num_classes}"
                )
            out = calibrate(
                torch.tensor(labels),
                probs,
                calibrator.tau_conf,
                calibrator.min_votes,
                calibrator.soft,
            )
            kept = out["kept"].tolist()
            self.calibration = {
                "kept": float(out["kept"].double().mean()),
                "relabelled": float((out["decision"] == 1).double().mean()),
            }
            records = [r for r, k in zip(records, kept, strict=True) if k]
            labels = [int(v) for v, k in zip(out["label"].tolist(), kept, strict=True) if k]
            if calibrator.soft:
                soft = [s for s, k in zip(out["soft_label"].tolist(), kept, strict=True) if k]
        if wanted is not None:  # the scale counts what calibration kept, in index order
            if wanted > len(records):
                raise ComponentError(
                    f"{where}: scale {params.scale} needs {wanted} synthetic items; "
                    f"{len(records)} of the {generated} in {folder} survive calibration; "
                    "generate more or lower the scale"
                )
            records, labels = records[:wanted], labels[:wanted]
            soft = soft[:wanted] if soft is not None else None
        use_soft = soft is not None
        shape = None
        if real is not None and len(real.split("train")):  # type: ignore[arg-type]
            shape = tuple(real.split("train")[0]["image"].shape)
        synthetic = GeneratedSplit(folder, records, labels, soft)
        self.splits: dict[str, torch.utils.data.Dataset] = {}
        self._labels: dict[str, np.ndarray] = {}
        if real is not None:
            parts = [_Unified(synthetic, True, shape, num_classes, use_soft)]
            train_labels = list(labels)
            if params.mix_real:
                parts.append(_Unified(real.split("train"), False, shape, num_classes, use_soft))
                real_train = real.labels("train")
                if real_train is None:
                    split = real.split("train")
                    real_train = np.asarray([split[i]["label"] for i in range(len(split))])  # type: ignore[arg-type]
                train_labels += [int(v) for v in real_train]
            self.splits["train"] = torch.utils.data.ConcatDataset(parts)
            self._labels["train"] = np.asarray(train_labels, dtype=np.int64)
            for name in ("val", "test"):
                if name in real.split_names:
                    self.splits[name] = _Unified(
                        real.split(name), False, shape, num_classes, use_soft
                    )
                    found = real.labels(name)
                    if found is not None:
                        self._labels[name] = np.asarray(found, dtype=np.int64)
        else:
            held = set(range(len(records)))
            step = round(1 / params.val_fraction) if params.val_fraction > 0 else 0
            val = sorted(range(0, len(records), step)) if step else []
            train = sorted(held - set(val))
            whole = _Unified(synthetic, True, None, num_classes, use_soft)
            self.splits["train"] = torch.utils.data.Subset(whole, train)
            self._labels["train"] = np.asarray([labels[i] for i in train], dtype=np.int64)
            if val:
                self.splits["val"] = torch.utils.data.Subset(whole, val)
                self._labels["val"] = np.asarray([labels[i] for i in val], dtype=np.int64)
        if params.as_test:
            self.splits["test"] = _Unified(synthetic, True, None, num_classes, use_soft)
            self._labels["test"] = np.asarray(labels, dtype=np.int64)
        self.split_names = tuple(self.splits)
        counts = np.bincount(self._labels["train"], minlength=num_classes)
        names = real_facts.class_names if real_facts is not None else None
        self._facts = DataFacts(
            num_samples=len(self._labels["train"]),
            num_classes=num_classes,
            class_counts=tuple(int(c) for c in counts),
            class_names=names,
            labels=tuple(int(v) for v in self._labels["train"]),
            extras={"synthetic_items": len(records), **self.calibration},
        )

    def split(self, name: str) -> torch.utils.data.Dataset:
        return self.splits[name]

    def labels(self, name: str) -> np.ndarray | None:
        return self._labels.get(name)

    def facts(self) -> DataFacts:
        return self._facts
