"""Stage-2 heads on frozen features and the feature pass-through backbone.

``ldfs.features`` (backbone) passes cached unit features through; ``ldfs.linear_probe``,
``ldfs.clip_adapter`` and ``ldfs.coop`` (adapters) train on real and, through
``ldfs.feature_synthesis``, synthetic features. Class text comes from the data facts
(``extras["text_features"][text_set]``) or from a wrapped ``core.open_clip`` backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, Backbone, BuildContext, ComponentError
from torch import Tensor, nn

from asklepios_ldfs.params import (
    ClipAdapterHeadParams,
    CoOpHeadParams,
    FeatureBackboneParams,
    LinearProbeParams,
)

__all__ = [
    "ClassTextSource",
    "ClipAdapterHead",
    "CoOpHead",
    "FeatureBackbone",
    "LinearProbe",
    "PromptTextEncoder",
]


@runtime_checkable
class PromptTextEncoder(Protocol):
    """A text tower that prompt learners can drive (``core.open_clip`` implements it)."""

    def tokenize(self, texts: Sequence[str]) -> Tensor: ...

    def token_embedding(self, tokens: Tensor) -> Tensor: ...

    def encode_token_embeddings(self, embeddings: Tensor, tokens: Tensor) -> Tensor: ...


@runtime_checkable
class ClassTextSource(Protocol):
    """A module that holds a zero-shot text classifier (``core.open_clip`` implements it)."""

    def class_text_features(self) -> Tensor: ...


def _facts_text(ctx: BuildContext, text_set: str) -> Tensor | None:
    sets = ctx.data.extras.get("text_features") or {}
    if text_set not in sets:
        return None
    table = torch.as_tensor(np.asarray(sets[text_set]), dtype=torch.float32)
    return F.normalize(table, dim=-1)


def _class_text(ctx: BuildContext, model: nn.Module | None, text_set: str, who: str) -> Tensor:
    table = _facts_text(ctx, text_set)
    if table is not None:
        return table
    for module in model.modules() if model is not None else ():
        if isinstance(module, ClassTextSource):
            with torch.no_grad():
                return module.class_text_features().detach().float().cpu()
    raise ComponentError(
        f"{who}: no class text features: the data facts lack extras['text_features'][{text_set!r}]"
        " and the model has no core.open_clip backbone; wrap the dataset with core.clip_features"
    )


def _feature_dim(ctx: BuildContext, model: nn.Module) -> int:
    dim = int(getattr(model, "feature_dim", 0) or ctx.data.num_features or 0)
    if not dim:
        raise ComponentError("ldfs head: cannot tell the feature width (feature_dim/num_features)")
    return dim


class FeatureBackbone(Backbone):
    """Pass cached unit features through; zero-shot logits when text features exist."""

    class_text: Tensor

    def __init__(self, params: FeatureBackboneParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        text = _facts_text(ctx, params.text_set)
        self.feature_dim = int(ctx.data.num_features or (text.shape[1] if text is not None else 0))
        if not self.feature_dim:
            raise ComponentError(
                "ldfs.features: the data facts give no feature width (num_features); use a "
                "feature dataset (core.clip_features, ldfs.toy_clip_space)"
            )
        self.register_buffer("class_text", text if text is not None else torch.empty(0))

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        features = F.normalize(batch["image"].float(), dim=-1)
        out = {"features": features}
        if self.class_text.numel():
            out["logits"] = self.params.logit_scale * features @ self.class_text.T
        return out


class LinearProbe(Adapter):
    """Classify unit features linearly, zero-shot initialised, with optional WiSE.

    ``init: zeroshot`` starts from the class text features; ``wise_beta`` evaluates with the
    WiSE interpolation ``(1 - beta) W_zs + beta W_ft`` (training always uses ``W_ft``).
    """

    zeroshot: Tensor

    def __init__(self, params: LinearProbeParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.ctx = ctx
        self.num_classes = int(ctx.data.num_classes or 0)
        if not self.num_classes:
            raise ComponentError("ldfs.linear_probe: the data facts give no num_classes")

    def wrap(self, model: nn.Module) -> nn.Module:
        super().wrap(model)
        p = self.params
        needs_text = p.init == "zeroshot" or p.wise_beta is not None
        text = _class_text(self.ctx, model, p.text_set, "ldfs.linear_probe") if needs_text else None
        dim = int(text.shape[1]) if text is not None else _feature_dim(self.ctx, model)
        if text is not None and text.shape[0] != self.num_classes:
            raise ComponentError(
                f"ldfs.linear_probe: text set {p.text_set!r} has {text.shape[0]} classes, the data "
                f"{self.num_classes}"
            )
        if p.init == "zeroshot":
            assert text is not None  # needs_text above
            weight = text.clone()
        else:
            weight = torch.empty(self.num_classes, dim)
            nn.init.kaiming_uniform_(weight, a=5**0.5)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.zeros(self.num_classes)) if p.bias else None
        self.register_buffer("zeroshot", text if text is not None else torch.empty(0))
        self.feature_dim = dim
        return self

    def effective_weight(self) -> tuple[Tensor, Tensor | None]:
        """Return the weights used now: fine-tuned in training, WiSE-interpolated in eval."""
        beta = self.params.wise_beta
        if self.training or beta is None:
            return self.weight, self.bias
        weight = (1 - beta) * self.zeroshot + beta * self.weight
        return weight, (beta * self.bias if self.bias is not None else None)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        features = F.normalize(out["features"].float(), dim=-1)
        weight, bias = self.effective_weight()
        logits = self.params.logit_scale * features @ weight.T
        out.update(features=features, logits=logits if bias is None else logits + bias)
        return out


class ClipAdapterHead(Adapter):
    """Adapt features with a CLIP-Adapter residual MLP; logits are scaled text cosines.

    ``f' = ratio A(f) + (1 - ratio) f``, logits ``logit_scale * cos(f', T)`` (100 by default);
    ``A`` is ``Linear(d, d/r) -> ReLU -> Linear(d/r, d) -> ReLU`` without biases (Gao et al.
    2021).
    """

    class_text: Tensor

    def __init__(self, params: ClipAdapterHeadParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.ctx = ctx

    def wrap(self, model: nn.Module) -> nn.Module:
        super().wrap(model)
        text = _class_text(self.ctx, model, self.params.text_set, "ldfs.clip_adapter")
        dim = int(text.shape[1])
        hidden = max(1, dim // self.params.reduction)
        self.register_buffer("class_text", text)
        self.adapter = nn.Sequential(
            nn.Linear(dim, hidden, bias=False),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim, bias=False),
            nn.ReLU(inplace=True),
        )
        return self

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        features = F.normalize(out["features"].float(), dim=-1)
        ratio = self.params.ratio
        adapted = F.normalize(ratio * self.adapter(features) + (1 - ratio) * features, dim=-1)
        out.update(features=adapted, logits=self.params.logit_scale * adapted @ self.class_text.T)
        return out


class CoOpHead(Adapter):
    """Learn CoOp context tokens before each class name, through the frozen text tower.

    Prompt ``[SOS] v_1 ... v_M CLASS . [EOS]``; the classifier is the text tower's output for the
    ``C`` prompts and logits are ``scale * f . t_c`` (Zhou et al., IJCV 2022).
    """

    tokens: Tensor
    prefix: Tensor
    suffix: Tensor

    def __init__(self, params: CoOpHeadParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        count = int(ctx.data.num_classes or 0)
        names = ctx.data.class_names or tuple(f"class {i}" for i in range(count))
        if not names:
            raise ComponentError("ldfs.coop: the data facts give neither class_names nor classes")
        self.class_names = tuple(names)

    def wrap(self, model: nn.Module) -> nn.Module:
        super().wrap(model)
        encoder = next((m for m in model.modules() if isinstance(m, PromptTextEncoder)), None)
        if encoder is None:
            raise ComponentError(
                "ldfs.coop: the model has no text tower; use backbone core.open_clip (with "
                "'inputs: features' on cached features) under this adapter"
            )
        self.text_encoder = [encoder]  # a list keeps it out of this module's parameters
        p = self.params
        n_ctx = len(p.ctx_init.split()) if p.ctx_init else p.n_ctx
        placeholder = " ".join(["X"] * n_ctx)
        tokens = encoder.tokenize([f"{placeholder} {name}." for name in self.class_names])
        with torch.no_grad():
            embedded = encoder.token_embedding(tokens).float()
            if p.ctx_init:
                init_tokens = encoder.tokenize([p.ctx_init])
                context = encoder.token_embedding(init_tokens)[0, 1 : 1 + n_ctx].float().clone()
            else:
                context = torch.randn(n_ctx, embedded.shape[-1]) * p.init_std
        self.context = nn.Parameter(context)
        self.register_buffer("tokens", tokens)
        self.register_buffer("prefix", embedded[:, :1].clone())
        self.register_buffer("suffix", embedded[:, 1 + n_ctx :].clone())
        scale = p.logit_scale
        if scale is None:
            scale = float(getattr(encoder, "logit_scale", torch.tensor(100.0)))
        self.scale = float(scale)
        return self

    def class_text(self) -> Tensor:
        """Return the ``(C, d)`` unit text classifier of the current context."""
        count = self.prefix.shape[0]
        context = self.context.unsqueeze(0).expand(count, -1, -1)
        embeddings = torch.cat([self.prefix, context, self.suffix], dim=1)
        text = self.text_encoder[0].encode_token_embeddings(embeddings, self.tokens)
        return F.normalize(text.float(), dim=-1)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        out = dict(self.model(batch))
        features = F.normalize(out["features"].float(), dim=-1)
        out.update(features=features, logits=self.scale * features @ self.class_text().T)
        return out
