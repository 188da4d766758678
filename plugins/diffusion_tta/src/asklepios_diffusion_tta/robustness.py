"""Corruption-robustness evaluator: accuracy per (corruption, severity), means and CE.

For every predictor present in the model output — ``model`` (``logits``: the ensemble when
``diffusion_tta.self_ensemble`` is used), ``source`` (``logits_source``) and ``adapted``
(``logits_adapted``) — it keeps one confusion matrix per (corruption, severity) and reports

* ``<p>/acc/<c>/s<k>`` and ``<p>/bacc/<c>/s<k>``: top-1 and balanced accuracy (mean recall over the
  classes present);
* ``<p>/acc/mean/s<k>``: mean over the corruptions seen at severity k (``s5`` is DDA's number),
  ``<p>/acc/mean``: mean over every (corruption, severity) seen, and the same for ``bacc``;
* ``<p>/acc/clean``: samples without corruption keys;
* with reference errors: ``<p>/ce/<c>`` = Σ_k E_{c,k} / Σ_k E^ref_{c,k} and ``<p>/mce``, the mean
  (Hendrycks & Dietterich 2019, where the reference is AlexNet).

The headline keys are the clean and mean accuracies and the mCE; the accuracies per cell also come
as one labelled matrix per predictor (:meth:`CorruptionRobustness.artifacts`), which the run
prints as one table and draws as a heat map under ``plots/<stage>/``.

A batch names its corruption and severity with integer tensors ``corruption`` (index into
:data:`ALL_CORRUPTIONS`) and ``severity`` (1..5), as ``diffusion_tta.corrupted`` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from asklepios_sdk import BuildContext, ComponentError, Evaluator
from torch import Tensor

from asklepios_diffusion_tta.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, MEDMNIST_DERMA
from asklepios_diffusion_tta.params import CorruptionRobustnessParams

__all__ = [
    "ALL_CORRUPTIONS",
    "CorruptionRobustness",
    "CorruptionRobustnessParams",
]

ALL_CORRUPTIONS: tuple[str, ...] = CORRUPTIONS + EXTRA_CORRUPTIONS + tuple(MEDMNIST_DERMA)
"""Every corruption name, in the order that defines the integer ``corruption`` id of a sample."""

PREDICTORS: dict[str, str] = {
    "model": "logits",
    "source": "logits_source",
    "adapted": "logits_adapted",
}
_CLEAN = len(ALL_CORRUPTIONS)


def _balanced_accuracy(confusion: Tensor) -> Tensor:
    support = confusion.sum(-1)
    recall = confusion.diagonal(dim1=-2, dim2=-1) / support.clamp_min(1)
    present = (support > 0).to(recall.dtype)
    return (recall * present).sum(-1) / present.sum(-1).clamp_min(1)


def _accuracy(confusion: Tensor) -> Tensor:
    return confusion.diagonal(dim1=-2, dim2=-1).sum(-1) / confusion.sum((-2, -1)).clamp_min(1)


def _matrix(tables: Mapping[str, list[float | None]], predictor: str) -> dict[str, Any]:
    """Return the accuracies as a labelled matrix over the severities seen (SDK artifact form)."""
    seen = [s for s in range(5) if any(row[s] is not None for row in tables.values())]
    return {
        "rows": list(tables),
        "columns": [f"s{s + 1}" for s in seen],
        "values": [[row[s] for s in seen] for row in tables.values()],
        "title": f"top-1 accuracy ({predictor})",
        "label": "accuracy",
    }


class CorruptionRobustness(Evaluator):
    """Report accuracy per corruption and severity, means over corruptions, and CE/mCE.

    Accuracy and balanced accuracy are kept per (corruption, severity) for the model, the
    source-only and the adapted-only predictions; :meth:`artifacts` gives the accuracies of each
    predictor as a corruption × severity matrix.
    """

    name = "corruption_robustness"
    higher_is_better = True
    headline_keys: ClassVar[tuple[str, ...]] = ("*/acc/clean", "*/acc/mean", "*/bacc/mean", "*/mce")
    full_state_update = False
    confusion: Tensor

    def __init__(self, params: CorruptionRobustnessParams, ctx: BuildContext) -> None:
        num_classes = ctx.data.num_classes
        if not num_classes:
            raise ComponentError(
                "diffusion_tta.corruption_robustness needs a classification dataset (num_classes)"
            )
        super().__init__()
        if num_classes < 2:
            raise ComponentError(
                f"diffusion_tta.corruption_robustness needs num_classes >= 2, got {num_classes}"
            )
        self.params = params
        self.num_classes = int(num_classes)
        self.matrices: dict[str, dict[str, Any]] = {}
        self.reference = self._load_reference(params)
        shape = (len(PREDICTORS), _CLEAN + 1, 6, num_classes, num_classes)
        self.add_state("confusion", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")

    @staticmethod
    def _load_reference(params: CorruptionRobustnessParams) -> dict[str, list[float]]:
        reference = dict(params.reference_errors or {})
        if params.reference_file is not None:
            try:
                reference.update(json.loads(Path(params.reference_file).read_text()))
            except (OSError, ValueError) as err:
                raise ComponentError(
                    f"diffusion_tta.corruption_robustness: cannot read reference_file "
                    f"{params.reference_file!r}: {err}"
                ) from err
        for name, errors in reference.items():
            if name not in ALL_CORRUPTIONS or len(errors) != 5:
                raise ComponentError(
                    f"reference error entry {name!r} must name a corruption and give 5 errors "
                    f"(severities 1..5), got {errors!r}"
                )
            if sum(errors) <= 0:
                raise ComponentError(f"reference errors of {name!r} sum to 0; CE is undefined")
        return reference

    def is_higher_better(self, key: str) -> bool:
        """Return False for corruption errors (``ce``, ``mce``), True for accuracies."""
        parts = key.split("/")
        return not (len(parts) > 1 and parts[1] in ("ce", "mce"))

    def update(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]) -> None:
        labels = batch["label"].long().view(-1)
        n = labels.shape[0]
        corruption = batch.get("corruption")
        severity = batch.get("severity")
        if corruption is None or severity is None:
            cells = torch.full((n,), _CLEAN * 6, device=labels.device)
        else:
            corruption = torch.as_tensor(corruption, device=labels.device).long().view(-1)
            severity = torch.as_tensor(severity, device=labels.device).long().view(-1)
            clean = severity == 0
            corruption = torch.where(clean, torch.full_like(corruption, _CLEAN), corruption)
            if bool(((corruption < 0) | (corruption > _CLEAN)).any()) or bool(
                ((severity < 0) | (severity > 5)).any()
            ):
                raise ComponentError(
                    "batch 'corruption' ids must index ALL_CORRUPTIONS and 'severity' be 0..5"
                )
            cells = corruption * 6 + severity
        k = self.num_classes
        for p, key in enumerate(PREDICTORS.values()):
            logits = outputs.get(key)
            if logits is None:
                continue
            predicted = logits.argmax(dim=1).view(-1)
            flat = (cells * k + labels) * k + predicted
            counts = torch.bincount(flat, minlength=(_CLEAN + 1) * 6 * k * k)
            self.confusion[p] += counts.view(_CLEAN + 1, 6, k, k)

    def compute(self) -> dict[str, float]:
        acc, bacc = _accuracy(self.confusion), _balanced_accuracy(self.confusion)
        seen = self.confusion.sum((-2, -1)) > 0
        result: dict[str, float] = {}
        self.matrices = {}
        for p, predictor in enumerate(PREDICTORS):
            if not bool(seen[p].any()):
                continue
            tables: dict[str, list[float | None]] = {}
            for c, corruption in enumerate(ALL_CORRUPTIONS):
                if not bool(seen[p, c].any()):
                    continue
                tables[corruption] = [None] * 5
                for s in range(1, 6):
                    if bool(seen[p, c, s]):
                        a = float(acc[p, c, s])
                        tables[corruption][s - 1] = a
                        result[f"{predictor}/acc/{corruption}/s{s}"] = a
                        result[f"{predictor}/bacc/{corruption}/s{s}"] = float(bacc[p, c, s])
            if bool(seen[p, _CLEAN, 0]):
                result[f"{predictor}/acc/clean"] = float(acc[p, _CLEAN, 0])
                result[f"{predictor}/bacc/clean"] = float(bacc[p, _CLEAN, 0])
            corrupted = seen[p, :_CLEAN, 1:]
            if bool(corrupted.any()):
                for metric, values in (("acc", acc), ("bacc", bacc)):
                    cells = values[p, :_CLEAN, 1:]
                    for s in range(5):
                        column = corrupted[:, s]
                        if bool(column.any()):
                            mean = float(cells[:, s][column].mean())
                            result[f"{predictor}/{metric}/mean/s{s + 1}"] = mean
                    result[f"{predictor}/{metric}/mean"] = float(cells[corrupted].mean())
            self._corruption_errors(result, predictor, tables)
            if self.params.plot and tables:
                self.matrices[f"{predictor}/acc_matrix"] = _matrix(tables, predictor)
        if not result:
            raise ComponentError("diffusion_tta.corruption_robustness: compute() before update()")
        return result

    def artifacts(self) -> dict[str, Any]:
        """Return ``<predictor>/acc_matrix``: accuracy per corruption (rows) and severity."""
        return dict(self.matrices)

    def _corruption_errors(
        self, result: dict[str, float], predictor: str, tables: Mapping[str, list[float | None]]
    ) -> None:
        errors = []
        for corruption, accuracies in tables.items():
            reference = self.reference.get(corruption)
            if reference is None or any(a is None for a in accuracies):
                continue
            ce = sum(1 - a for a in accuracies if a is not None) / sum(reference)
            result[f"{predictor}/ce/{corruption}"] = ce
            errors.append(ce)
        if errors:
            result[f"{predictor}/mce"] = sum(errors) / len(errors)

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Return source, adapted and model logits with corruption ids and severities."""
        gen = torch.Generator().manual_seed(2)
        k = self.num_classes
        outputs = {key: torch.randn(batch_size, k, generator=gen) for key in PREDICTORS.values()}
        batch = {
            "label": torch.randint(0, k, (batch_size,), generator=gen),
            "corruption": torch.randint(0, len(CORRUPTIONS), (batch_size,), generator=gen),
            "severity": torch.randint(1, 6, (batch_size,), generator=gen),
        }
        return outputs, batch
