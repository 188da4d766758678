"""Private helpers of the adapters: find the wrapped model's classifier and feature width."""

from __future__ import annotations

from asklepios_sdk import ComponentError
from torch import nn

__all__ = ["feature_dim", "find_classifier", "freeze_module"]

_CANDIDATES = ("classifier", "fc", "head", "model.classifier", "model.fc", "model.head")


def _resolve(model: nn.Module, path: str) -> nn.Module | None:
    obj: object = model
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, nn.Module) else None


def find_classifier(model: nn.Module, path: str | None, component: str) -> nn.Linear:
    """Return the wrapped model's linear classifier (at ``path``, or a conventional name).

    Without a path it tries ``classifier``, ``fc``, ``head`` (directly or under ``model.``) and
    timm's ``get_classifier()`` on the model or on its ``model`` attribute.
    """
    paths = (path,) if path else _CANDIDATES
    for candidate in paths:
        module = _resolve(model, candidate)
        if isinstance(module, nn.Linear):
            return module
    if path is None:
        for owner in (model, getattr(model, "model", None)):
            getter = getattr(owner, "get_classifier", None)
            module = getter() if callable(getter) else None
            if isinstance(module, nn.Linear):
                return module
    raise ComponentError(
        f"{component} needs the wrapped model's linear classifier, but found none at "
        f"{list(paths)}; set the adapter's classifier_path to the attribute path of its "
        "nn.Linear head (e.g. 'classifier' or 'model.fc')"
    )


def feature_dim(model: nn.Module, component: str) -> int:
    """Return the width of the wrapped model's ``features`` output."""
    width = getattr(model, "feature_dim", 0)
    if not width:
        inner = getattr(model, "model", None)
        width = getattr(inner, "feature_dim", 0) if inner is not None else 0
    if not width:
        raise ComponentError(
            f"{component} cannot tell the width of the wrapped model's features (no "
            "feature_dim attribute); put it directly on a Backbone that sets feature_dim"
        )
    return int(width)


def freeze_module(module: nn.Module, keep: tuple[nn.Parameter, ...] = ()) -> None:
    """Set ``requires_grad=False`` on every parameter of ``module`` except those in ``keep``."""
    kept = {id(p) for p in keep}
    for param in module.parameters():
        if id(param) not in kept:
            param.requires_grad_(False)
