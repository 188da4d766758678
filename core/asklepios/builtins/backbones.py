"""Built-in backbones: any timm model, and a multi-layer perceptron for tabular or small data."""

from __future__ import annotations

import math
from typing import Any

from asklepios_sdk import Backbone, Batch, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios.builtins.params import MLPBackboneParams, TimmBackboneParams

__all__ = ["MLPBackbone", "TimmBackbone"]


def _num_classes(value: int | None, ctx: BuildContext, component: str) -> int:
    num_classes = value if value is not None else ctx.data.num_classes
    if not num_classes:
        raise ComponentError(
            f"{component}: the dataset does not state a number of classes; "
            f"set it explicitly, e.g. --set model.backbone.num_classes=10"
        )
    return int(num_classes)


class TimmBackbone(Backbone):
    """Wrap a timm model: logits from its classifier, features from its pooled pre-logits."""

    model: Any  # a timm model: forward_features, forward_head, reset_classifier, num_features

    def __init__(self, params: TimmBackboneParams, ctx: BuildContext) -> None:
        import timm  # imported on construction: registering and validating need only the params

        super().__init__()
        if not timm.is_model(params.model_name.split(".")[0]):
            close = timm.list_models(f"*{params.model_name.split('.')[0]}*")[:5]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ComponentError(f"core.timm: unknown timm model {params.model_name!r}{hint}")
        kwargs = dict(params.kwargs)
        if params.pretrained_file is not None:
            kwargs["pretrained"] = True
            kwargs["pretrained_cfg_overlay"] = {"file": params.pretrained_file}
        self.model = timm.create_model(
            params.model_name,
            num_classes=_num_classes(params.num_classes, ctx, "core.timm"),
            in_chans=params.in_chans or ctx.data.in_channels or 3,
            drop_rate=params.drop_rate,
            **kwargs,
        )
        self.feature_dim = int(self.model.num_features)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        feature_map = self.model.forward_features(batch["image"])
        features = self.model.forward_head(feature_map, pre_logits=True)
        logits = self.model.forward_head(feature_map)
        return {"logits": logits, "features": features}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        self.model.reset_classifier(num_classes)


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


class MLPBackbone(Backbone):
    """Flatten the input and apply Linear-activation-dropout blocks, then a linear classifier."""

    def __init__(self, params: MLPBackboneParams, ctx: BuildContext) -> None:
        super().__init__()
        in_features = params.in_features or ctx.data.num_features
        if in_features is None and ctx.data.image_size is not None:
            in_features = (ctx.data.in_channels or 1) * math.prod(ctx.data.image_size)
        if in_features is None:
            raise ComponentError(
                "core.mlp: cannot infer the input width (the dataset states neither num_features "
                "nor image_size); set it, e.g. --set model.backbone.in_features=64"
            )
        layers: list[nn.Module] = [nn.Flatten()]
        width = int(in_features)
        for hidden in params.hidden:
            layers += [nn.Linear(width, hidden), _ACTIVATIONS[params.activation]()]
            if params.dropout > 0:
                layers.append(nn.Dropout(params.dropout))
            width = hidden
        self.body = nn.Sequential(*layers)
        self.feature_dim = width
        self.classifier = nn.Linear(width, _num_classes(params.num_classes, ctx, "core.mlp"))

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        features = self.body(batch["image"])
        return {"logits": self.classifier(features), "features": features}

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier with a freshly initialised one of ``num_classes`` outputs."""
        device = self.classifier.weight.device
        self.classifier = nn.Linear(self.feature_dim, num_classes).to(device)
