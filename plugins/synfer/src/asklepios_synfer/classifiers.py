"""External classifiers (guidance, calibration, evaluation) built from registered backbones.

A :class:`~asklepios_synfer.params.ClassifierRef` names a backbone component, its params and
its weights: a local file, or the backbone of an earlier stage's checkpoint in this run
(``<run>/checkpoints/<stage>/<best|last>.pt``). Images in [0, 1] are resized to the
classifier's input side, averaged to grey when it takes one channel, and normalised. The
classifier's *id* — component and sha256 of its weights file — is what
``synfer.generation_quality`` compares with the guidance classifier's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from asklepios_sdk import BuildContext, DataFacts, WeightsError, WeightsSpec
from asklepios_sdk.components import build_component
from asklepios_sdk.weights import file_sha256, load_weights
from torch import Tensor, nn

from asklepios_synfer.params import ClassifierRef

__all__ = [
    "Classifier",
    "build_classifier",
    "classifier_id",
    "classifier_source",
    "reference_key",
]


def classifier_source(ref: ClassifierRef, ctx: BuildContext, where: str) -> Path:
    """Return the weights file ``ref`` names (an earlier stage's checkpoint, or its file)."""
    if ref.weights is not None:
        return Path(ref.weights).expanduser()
    if not ctx.output_dir:
        raise WeightsError(
            f"{where}: from_stage {ref.from_stage!r} is read from the run directory, which "
            "exists only while the run runs"
        )
    path = Path(ctx.output_dir) / "checkpoints" / str(ref.from_stage) / f"{ref.checkpoint}.pt"
    if not path.is_file():
        raise WeightsError(
            f"{where}: no checkpoint {path}; stage {ref.from_stage!r} must run (and train) before "
            f"stage {ctx.stage!r}"
        )
    return path


def classifier_id(ref: ClassifierRef, ctx: BuildContext, where: str) -> str:
    """Return the classifier's id: its component and the sha256 of its weights file."""
    return f"{ref.component}@{file_sha256(classifier_source(ref, ctx, where))[:16]}"


def reference_key(ref: ClassifierRef) -> tuple[str, str]:
    """Return what a config says a classifier is: its component and weights source."""
    source = ref.weights if ref.weights is not None else f"stage:{ref.from_stage}:{ref.checkpoint}"
    return ref.component, str(source)


class Classifier(nn.Module):
    """A frozen classifier of images in [0, 1]: resize, channels, normalise, then logits."""

    def __init__(self, backbone: nn.Module, ref: ClassifierRef, model_id: str) -> None:
        super().__init__()
        self.backbone = backbone.eval().requires_grad_(False)
        self.size, self.channels, self.model_id = ref.input_size, ref.channels, model_id
        channels = len(ref.mean)
        self.register_buffer("mean", torch.tensor(ref.mean).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(ref.std).view(1, channels, 1, 1))

    def prepare(self, images: Tensor) -> Tensor:
        """Return ``images`` ([0, 1], any side) as the classifier's normalised input."""
        x = images.float()
        if x.shape[1] == 3 and self.channels == 1:
            x = x.mean(dim=1, keepdim=True)
        elif x.shape[1] == 1 and self.channels == 3:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        mean, std = cast(Tensor, self.mean), cast(Tensor, self.std)
        return (x - mean) / std

    def forward(self, images: Tensor) -> Tensor:
        return cast(Tensor, self.backbone({"image": self.prepare(images)})["logits"])

    def features(self, images: Tensor) -> Tensor:
        """Return the backbone's ``features`` of ``images`` (FID's feature extractor)."""
        return cast(Tensor, self.backbone({"image": self.prepare(images)})["features"])


def build_classifier(ref: ClassifierRef, ctx: BuildContext, where: str) -> Classifier:
    """Build the classifier ``ref`` names, with its weights, frozen, on ``ctx.device``.

    Raises:
        WeightsError: the weights file or stage checkpoint is missing or does not fit.
        AsklepiosError: the component does not build (the host's message names ``where``).
    """
    facts = DataFacts(
        num_classes=ref.num_classes or ctx.data.num_classes,
        in_channels=ref.channels,
        image_size=(ref.input_size, ref.input_size),
    )
    part_ctx = ctx.replace(data=facts)
    backbone = build_component("backbone", ref.component, ref.params, part_ctx, where=where)
    path = classifier_source(ref, ctx, where)
    if ref.weights is not None:
        load_weights(backbone, WeightsSpec(path=str(path)), where=where)
    else:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
        try:
            backbone.load_state_dict(state["backbone"])
        except (KeyError, RuntimeError) as err:
            raise WeightsError(
                f"{where}: the backbone of {path} does not fit {ref.component}: {err}"
            ) from err
    return Classifier(backbone, ref, classifier_id(ref, ctx, where)).to(ctx.device)
