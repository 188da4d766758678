"""Generation quality: FER accuracy by a held-out classifier, and FID (spec §3, §4).

The FER accuracy of generated images must come from a classifier *other* than the one that
guided the generation: the third-party reproduction scored with its guidance model and
reported an inflated 88.9 %. ``synfer.generation_quality`` reads the guidance classifier from
the generated folder's ``manifest.json`` and refuses, as a configuration error, a classifier
with the same component and weights source, or the same weights file (sha256). FID is
torchmetrics' ``FrechetInceptionDistance`` over the ``features`` of a backbone the user
supplies as a local file (or a stage of the run): no Inception weights are downloaded.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar, cast

import torch
from asklepios_sdk import (
    AsklepiosWarning,
    BuildContext,
    ComponentError,
    ConfigConflictError,
    Evaluator,
)
from asklepios_sdk.components import build_component
from asklepios_sdk.synthesis import GENERATION_MODELS_EXTRA, generated_dir, read_manifest
from torch import Tensor, nn

from asklepios_synfer.classifiers import Classifier, build_classifier, reference_key
from asklepios_synfer.params import ClassifierRef, GenerationQualityParams

__all__ = ["GenerationQuality", "check_independent", "configured_guidance"]


def configured_guidance(model: Any) -> list[tuple[str, str]]:
    """Return ``(component, source)`` of every guidance classifier in a ``model`` section."""
    found: list[tuple[str, str]] = []
    if isinstance(model, dict):
        ref = model.get("classifier")
        if isinstance(ref, dict) and "component" in ref:
            with contextlib.suppress(ValueError):  # an invalid one is its own component's error
                found.append(reference_key(ClassifierRef(**ref)))
        for value in model.values():
            found += configured_guidance(value)
    elif isinstance(model, list):
        for value in model:
            found += configured_guidance(value)
    return found


def check_independent(
    guidance: dict[str, Any] | None, component: str, source: str, model_id: str | None
) -> None:
    """Raise a configuration error when the evaluator's classifier is the guidance one."""
    if not guidance:
        return
    same_ref = (guidance.get("component"), guidance.get("source")) == (component, source)
    same_weights = model_id is not None and guidance.get("id") == model_id
    if same_ref or same_weights:
        raise ConfigConflictError(
            "configuration error: synfer.generation_quality scores with the classifier that "
            f"guided the generation ({guidance.get('id') or component}, {source}); its accuracy "
            "on images it steered toward their labels is inflated. Give "
            "evaluators[].classifier another model (other weights)"
        )


class _Features(nn.Module):
    """The FID feature extractor: the supplied backbone's ``features`` of images in [0, 1]."""

    def __init__(self, classifier: Classifier, num_features: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_features = num_features

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier.features(images).flatten(1)


class GenerationQuality(Evaluator):
    """Score generated images: FER accuracy by a held-out classifier, and FID vs real ones.

    ``update`` reads the evaluated batch's ``image`` ([0, 1]) and ``label`` (intended labels);
    model outputs are not used. Keys: ``fer_accuracy`` (with ``classifier``) and ``fid`` (with
    ``feature_extractor`` and ``reference``; lower is better).
    """

    name = "generation_quality"
    higher_is_better = True
    key_directions: ClassVar[Mapping[str, bool]] = {"fid": False}
    correct: Tensor
    total: Tensor

    def __init__(self, params: GenerationQualityParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params, self.ctx = params, ctx
        guidance = None
        pending = dict(ctx.extras.get(GENERATION_MODELS_EXTRA) or {})
        if params.classifier is not None and params.stage in pending:  # checked before the run
            mine = reference_key(params.classifier)
            for component, source in configured_guidance(pending[params.stage]):
                check_independent({"component": component, "source": source}, *mine, None)
        if params.stage is not None or params.path is not None:
            folder = generated_dir(
                ctx, stage=params.stage, path=params.path, where="synfer.generation_quality"
            )
            guidance = read_manifest(folder).get("generator", {}).get("guidance_classifier")
        self.classifier: Classifier | None = None
        if params.classifier is not None:
            component, source = reference_key(params.classifier)
            check_independent(guidance, component, source, None)
            self.classifier = build_classifier(
                params.classifier, ctx, "synfer.generation_quality.classifier"
            )
            check_independent(guidance, component, source, self.classifier.model_id)
            if guidance is None and params.stage is None and params.path is None:
                warnings.warn(
                    "synfer.generation_quality cannot check that its classifier differs from "
                    "the guidance classifier: give 'stage' or 'path' of the generated set",
                    AsklepiosWarning,
                    stacklevel=2,
                )
        self.add_state(
            "correct", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.fid: Any = None
        self.reference: Any = None
        if params.feature_extractor is not None:
            self._set_up_fid(params, ctx)

    def _set_up_fid(self, params: GenerationQualityParams, ctx: BuildContext) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        if params.reference is None:
            raise ComponentError(
                "synfer.generation_quality: FID needs 'reference' (the real dataset)"
            )
        assert params.feature_extractor is not None
        extractor = build_classifier(
            params.feature_extractor, ctx, "synfer.generation_quality.feature_extractor"
        )
        probe = torch.rand(2, 3, 16, 16, device=ctx.device)
        width = int(extractor.features(probe).flatten(1).shape[1])
        self.fid = FrechetInceptionDistance(
            feature=_Features(extractor, width), reset_real_features=False, normalize=True
        )
        spec = dict(params.reference)
        kind = spec.pop("type", None)
        if not kind:
            raise ComponentError("synfer.generation_quality: reference needs a dataset 'type'")
        dataset = build_component(
            "dataset", kind, spec, ctx, where="synfer.generation_quality.reference"
        )
        self.reference = dataset.split(params.reference_split)
        self._real_done = False

    def _feed_reference(self) -> None:
        """Add this rank's share of the reference images to FID's real statistics, once."""
        rank, world = self.ctx.rank, self.ctx.world_size
        share = list(range(rank, len(self.reference), world))
        for start in range(0, len(share), 64):
            images = torch.stack([self.reference[i]["image"] for i in share[start : start + 64]])
            images = images.float().to(self.device)
            if images.shape[1] == 1:
                images = images.repeat(1, 3, 1, 1)
            self.fid.update(images, real=True)
        self._real_done = True

    def update(self, outputs: Any, batch: dict[str, Any]) -> None:
        images = batch["image"].float()
        if self.classifier is not None:
            self.classifier.to(self.device)
            with torch.no_grad():
                predicted = self.classifier(images).argmax(dim=1)
            self.correct += (predicted == batch["label"]).sum().double()
            self.total += float(images.shape[0])
        if self.fid is not None:
            self.fid.to(self.device)
            if not self._real_done:
                self._feed_reference()
            rgb = images.repeat(1, 3, 1, 1) if images.shape[1] == 1 else images
            self.fid.update(rgb, real=False)

    def compute(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.classifier is not None:
            out["fer_accuracy"] = float(self.correct / self.total.clamp_min(1))
        if self.fid is not None:
            out["fid"] = float(cast(Tensor, self.fid.compute()))
        return out

    def reset(self) -> None:
        super().reset()
        if self.fid is not None:
            self.fid.reset()  # the real statistics stay (reset_real_features=False)
