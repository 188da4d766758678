"""PanDerm's test-time augmentation: 5 random views per image, mean logits, then softmax (§4).

The repo's test loader yields ``ToTensor()`` of the raw image; every image then gets ``views``
random views (``Resize(246)`` -> ``CenterCrop(224)`` -> flips -> p=0.3 rotation in [0, 270] ->
p=0.3 hue/saturation jitter -> ``Normalize`` with std 0.229) and the logits are averaged.
Give it un-normalised [0, 1] images (``panderm.eval_transform`` with ``normalize: false`` and no
crop; images of different sizes need ``data.loader.eval_batch_size: 1``). In asklepios val and
test share the model, so under this adapter val is also scored on TTA views.
"""

from __future__ import annotations

from typing import Any

import torch
from asklepios_sdk import Adapter, Batch, BuildContext, example_batch
from torch import Tensor
from torchvision.transforms import v2

from asklepios_panderm.params import PanDermTTAParams
from asklepios_panderm.transforms import IMAGENET_MEAN, STDS

__all__ = ["PanDermTTA"]


class PanDermTTA(Adapter):
    """Average the logits of random test-time views of each image (training: pass through).

    The views are drawn from a generator seeded by ``seed`` and the number of calls so far, so an
    evaluation is reproducible and leaves the global random state untouched.
    """

    def __init__(self, params: PanDermTTAParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.views = params.views
        self.seed = int(params.seed)
        self.calls = 0
        self.view = v2.Compose(
            [
                v2.Resize(params.resize, antialias=True),
                v2.CenterCrop(params.crop),
                v2.RandomHorizontalFlip(params.hflip),
                v2.RandomVerticalFlip(params.vflip),
                v2.RandomApply(
                    [v2.RandomRotation((0.0, params.rotation_degrees))], p=params.rotation_p
                ),
                v2.RandomApply(
                    [v2.ColorJitter(hue=params.hue, saturation=params.saturation)],
                    p=params.jitter_p,
                ),
                v2.Normalize(mean=list(IMAGENET_MEAN), std=list(STDS[params.std])),
            ]
        )

    def tta_views(self, images: Tensor) -> Tensor:
        """Return ``[views, B, C, crop, crop]`` random views of ``[B, C, H, W]`` images."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + self.calls)
            self.calls += 1
            return torch.stack(
                [torch.stack([self.view(image) for image in images]) for _ in range(self.views)]
            )

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        if self.training:
            return self.model(batch)
        images = batch["image"]
        views = self.tta_views(images)
        count, size = views.shape[0], views.shape[1]
        outputs: dict[str, Any] = self.model({"image": views.flatten(0, 1)})
        logits = outputs["logits"].reshape(count, size, -1).mean(dim=0)
        result = {"logits": logits, "probs": logits.softmax(dim=-1)}
        features = outputs.get("features")
        if isinstance(features, Tensor) and features.dim() == 2:
            result["features"] = features.reshape(count, size, -1).mean(dim=0)
        return result

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return images the wrapped model accepts (what it expects, in training mode)."""
        inner = getattr(self, "model", None)
        maker = getattr(inner, "example_batch", None)
        return maker(ctx, batch_size) if callable(maker) else example_batch(ctx, batch_size)
