"""Pseudo-label calibration of generated images by an ensemble vote (our rule, spec §2.5).

The paper names a "pseudo-label generator" / "FERAnno label calibrator" validated by ensemble
voting but gives neither its inputs, thresholds nor voting rule. This rule is *reconstructed*
([proposal]); ``tau_conf`` and ``min_votes`` are our parameters, not the paper's. With the
intended label y₀ and the class-probability vectors p_m of M ≥ 1 models:

- p̄ = mean_m p_m, votes v_k = #{m : argmax p_m = k}, ŷ = argmax p̄;
- ŷ = y₀: keep y₀;
- else if max p̄ ≥ τ_conf and v_ŷ ≥ min_votes: relabel to ŷ;
- else drop the sample, or keep it with the soft label p̄ when ``soft``.

Each sample gets ``{label, soft_label, confidence, kept}`` (``label`` −1 when dropped; a soft
sample keeps y₀ as ``label`` and p̄ as ``soft_label``).

A member that is the classifier which *guided* the generation agrees with the intended labels
it steered the images toward, so the vote keeps labels it should question (the bias that
inflated the reproduction's FER accuracy). Both the evaluator and ``synfer.synthetic_fer`` warn
(:class:`~asklepios_sdk.AsklepiosWarning`) about such a member: same component and weights
source as the guidance classifier in a generated folder's manifest, or the same weights file
(sha256).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from asklepios_sdk import AsklepiosWarning, BuildContext, ComponentError, Evaluator, WeightsError
from asklepios_sdk.synthesis import GENERATED_EXTRA, GENERATION_MODELS_EXTRA, read_manifest
from torch import Tensor

from asklepios_synfer.classifiers import (
    Classifier,
    build_classifier,
    classifier_id,
    reference_key,
)
from asklepios_synfer.params import ClassifierRef, LabelCalibratorParams

__all__ = [
    "DECISIONS",
    "LabelCalibrator",
    "calibrate",
    "guidance_classifiers",
    "manifest_guidance",
    "warn_guidance_members",
]

DECISIONS = ("agree", "relabel", "soft", "drop")
"""What the rule did with a sample, by code 0..3."""


def calibrate(
    intended: Tensor, probs: Tensor, tau_conf: float, min_votes: int, soft: bool
) -> dict[str, Tensor]:
    """Apply the rule to ``probs`` ``[M, N, K]`` and intended labels ``[N]``.

    Returns:
        ``label`` ``[N]`` (−1 dropped), ``soft_label`` ``[N, K]`` (one-hot of the hard label,
        p̄ for a soft sample, zeros when dropped), ``confidence`` (max p̄), ``kept`` (bool),
        ``decision`` (index into :data:`DECISIONS`).
    """
    if probs.dim() != 3:
        raise ComponentError(f"calibrate: probs must be [M, N, K], got {tuple(probs.shape)}")
    mean = probs.mean(dim=0)
    num_classes = mean.shape[1]
    confidence, top = mean.max(dim=1)
    votes = torch.nn.functional.one_hot(probs.argmax(dim=2), num_classes).sum(dim=0)
    top_votes = votes.gather(1, top[:, None]).squeeze(1)
    intended = intended.long()
    agree = top == intended
    relabel = ~agree & (confidence >= tau_conf) & (top_votes >= min_votes)
    undecided = ~agree & ~relabel
    label = torch.where(agree, intended, torch.where(relabel, top, torch.full_like(top, -1)))
    if soft:
        label = torch.where(undecided, intended, label)
    soft_label = torch.nn.functional.one_hot(label.clamp_min(0), num_classes).to(mean.dtype)
    soft_label = torch.where(
        undecided[:, None], mean if soft else torch.zeros_like(mean), soft_label
    )
    decision = torch.where(
        agree,
        0,
        torch.where(relabel, 1, torch.full_like(top, 2 if soft else 3)),
    )
    return {
        "label": label,
        "soft_label": soft_label,
        "confidence": confidence,
        "kept": label >= 0,
        "decision": decision,
    }


def manifest_guidance(folder: Path, name: str) -> list[dict[str, Any]]:
    """Return the guidance classifier a generated folder's manifest names (none: ``[]``)."""
    try:
        manifest = read_manifest(folder)
    except ComponentError:
        return []
    found = (manifest.get("generator") or {}).get("guidance_classifier")
    return [{**found, "stage": name}] if isinstance(found, dict) else []


def guidance_classifiers(ctx: BuildContext, stage: str | None = None) -> list[dict[str, Any]]:
    """Return the guidance classifiers of the run's generation stages (or of ``stage``).

    Each is ``{component, source, id, stage}``, from the manifest of a generated folder.
    """
    found: list[dict[str, Any]] = []
    for name, folder in dict(ctx.extras.get(GENERATED_EXTRA) or {}).items():
        if folder is not None and stage in (None, name):
            found += manifest_guidance(Path(folder), name)
    return found


def warn_guidance_members(
    refs: Sequence[ClassifierRef], guidance: list[dict[str, Any]], ctx: BuildContext, where: str
) -> None:
    """Warn about each member of ``refs`` that is one of the ``guidance`` classifiers.

    A member matches by component and weights source, or by id (component and sha256 of its
    weights file) when a manifest gives the guidance classifier's id and the file exists.
    Nothing is checked while the config is checked before the run (``ctx.extras`` has
    ``generation_models``, and the generated folder's manifest does not exist yet): the build
    in the run warns, once.
    """
    if GENERATION_MODELS_EXTRA in ctx.extras:
        return
    with_ids = any(g.get("id") for g in guidance)
    for i, ref in enumerate(refs):
        key = reference_key(ref)
        member_id = None
        if with_ids:
            try:
                member_id = classifier_id(ref, ctx, f"{where}[{i}]")
            except WeightsError:
                member_id = None  # its own build reports the missing file
        for found in guidance:
            same_ref = (found.get("component"), found.get("source")) == key
            if same_ref or (member_id is not None and found.get("id") == member_id):
                warnings.warn(
                    f"{where}[{i}] ({key[0]}, {key[1]}) is the classifier that guided "
                    f"generation stage {found.get('stage')!r}: it agrees with the labels it "
                    "steered the images toward, so the ensemble vote keeps labels it should "
                    "question. Calibrate with classifiers independent of the guidance one",
                    AsklepiosWarning,
                    stacklevel=3,
                )
                break


class LabelCalibrator(Evaluator):
    """Vote on generated images' labels with an ensemble; report kept/relabelled/dropped.

    Each member (``models``) classifies the evaluated images; the rule of :func:`calibrate`
    runs on the intended labels (``batch["label"]``) in ``compute``. ``synfer.synthetic_fer``
    applies the same rule, with the same params, to the labels it serves.
    """

    name = "label_calibrator"
    higher_is_better = True
    key_directions: ClassVar[Mapping[str, bool]] = {"dropped": False, "relabelled": False}
    output_keys = ("kept", "agree", "relabelled", "soft", "dropped", "confidence")
    intended: list[Tensor]
    probs: list[Tensor]

    def __init__(self, params: LabelCalibratorParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.ctx = ctx
        self.members: list[Classifier] | None = None
        self.num_members = max(1, len(params.models))
        where = f"synfer.label_calibrator (stage {ctx.stage!r}): models"
        warn_guidance_members(params.models, guidance_classifiers(ctx), ctx, where)
        self.add_state("intended", default=[], dist_reduce_fx="cat")
        self.add_state("probs", default=[], dist_reduce_fx="cat")

    def _members(self) -> list[Classifier]:
        if self.members is None:
            if not self.params.models:
                raise ComponentError("synfer.label_calibrator: give at least one model (models)")
            self.members = [
                build_classifier(ref, self.ctx, f"label_calibrator.models.{i}").to(self.device)
                for i, ref in enumerate(self.params.models)
            ]
        return self.members

    def member_probs(self, images: Tensor) -> Tensor:
        """Return the members' softmax probabilities ``[M, B, K]`` for images in [0, 1]."""
        with torch.no_grad():
            return torch.stack([m(images).float().softmax(dim=1) for m in self._members()])

    def update(self, outputs: Any, batch: dict[str, Any]) -> None:
        probs = outputs.get("member_probs") if isinstance(outputs, dict) else None
        if probs is None:
            probs = self.member_probs(batch["image"]).transpose(0, 1)
        self.num_members = int(probs.shape[1])
        self.intended.append(batch["label"].long())
        self.probs.append(probs.flatten(1))  # [B, M*K]: cat along samples across ranks

    def compute(self) -> dict[str, Any]:
        intended = torch.cat(self.intended) if isinstance(self.intended, list) else self.intended
        flat = torch.cat(self.probs) if isinstance(self.probs, list) else self.probs
        probs = flat.view(flat.shape[0], self.num_members, -1).transpose(0, 1)
        p = self.params
        out = calibrate(intended, probs, p.tau_conf, p.min_votes, p.soft)
        decision = out["decision"]
        shares = {
            name: float((decision == code).double().mean()) for code, name in enumerate(DECISIONS)
        }
        return {
            "kept": float(out["kept"].double().mean()),
            "agree": shares["agree"],
            "relabelled": shares["relabel"],
            "soft": shares["soft"],
            "dropped": shares["drop"],
            "confidence": float(out["confidence"].double().mean()),
        }

    def example_inputs(
        self, ctx: BuildContext, batch_size: int = 8
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Return member probabilities ``[B, M, 3]`` and intended labels (3 classes)."""
        gen = torch.Generator().manual_seed(2)
        probs = torch.randn(batch_size, max(1, len(self.params.models)), 3, generator=gen)
        batch = {
            "image": torch.rand(batch_size, 3, 8, 8, generator=gen),
            "label": torch.randint(0, 3, (batch_size,), generator=gen),
        }
        return {"member_probs": probs.softmax(dim=2)}, batch
