"""How a stage starts from another stage's checkpoint (``init_from``), and the report of it.

The parts of the model that are the source stage's own are loaded; every other part keeps its
fresh initialisation; the run log then names, by module path, what was loaded, re-initialised and
frozen.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from asklepios.config.model import ComponentSpec, ExperimentConfig, StageConfig
from asklepios.engine.checkpoint import load_checkpoint

if TYPE_CHECKING:
    from asklepios.engine.loop import StageRunner

__all__ = ["group_names", "init_from_checkpoint", "init_report"]


def _same_part(ours: ComponentSpec, theirs: ComponentSpec) -> bool:
    """Return whether an adapter is the source stage's one (same type and ``weights:``)."""
    return ours.type == theirs.type and ours.weights == theirs.weights


def _fits(module: nn.Module, tensors: dict[str, torch.Tensor]) -> bool:
    own = module.state_dict()
    return set(own) == set(tensors) and all(own[k].shape == v.shape for k, v in tensors.items())


def init_from_checkpoint(
    runner: StageRunner, fold_dir: Path, stage: StageConfig, config: ExperimentConfig
) -> dict[int, torch.Tensor]:
    """Load the checkpoint a stage starts from; return the model tensors it filled, by id.

    The backbone is always loaded. The leading adapters that are the source stage's own (same
    type and ``weights:`` at the same place, with tensors of the same names and shapes) are
    loaded with it; from the first adapter that differs on, every adapter keeps the fresh
    initialisation it was built with, even where its parameter names match the source's (a
    ``longtail.crt`` cosine head after a ``longtail.cosine_head`` stage starts fresh). The
    nested part is found as the module of this stage's model that holds the backbone and whose
    tensors match the source's, whose adapters nest the inner model as ``model`` (the SDK's
    ``Adapter.wrap``).
    """
    from asklepios.config import stage_configs

    init = stage.init_from
    assert init is not None
    path = fold_dir / "checkpoints" / init.stage / f"{init.checkpoint}.pt"
    state = load_checkpoint(path, map_location=runner.device)
    source = next(c for s, c in stage_configs(config) if s is not None and s.name == init.stage)
    ours, theirs = runner.config.model.adapters, source.model.adapters
    same = 0
    while same < min(len(ours), len(theirs)) and _same_part(ours[same], theirs[same]):
        same += 1
    backbone = runner.built.backbone
    target, tensors = backbone, state["backbone"]
    for kept in range(same, 0, -1):
        prefix = "model." * (len(theirs) - kept)
        part = {k[len(prefix) :]: v for k, v in state["model"].items() if k.startswith(prefix)}
        found = [
            m
            for m in runner.model.modules()
            if any(b is backbone for b in m.modules()) and _fits(m, part)
        ]
        if found:
            target, tensors = found[0], part
            break
    target.load_state_dict(tensors)
    return {id(t): t for t in target.state_dict(keep_vars=True).values()}


def group_names(status: dict[str, str]) -> dict[str, list[str]]:
    """Collapse tensor names into the shortest module paths whose tensors share a status."""
    groups: dict[str, list[str]] = {}

    def visit(prefix: str, names: list[str]) -> None:
        kinds = {status[n] for n in names}
        if len(kinds) == 1:
            label = prefix if names == [prefix] else f"{prefix}.*" if prefix else "*"
            groups.setdefault(kinds.pop(), []).append(label)
            return
        depth = prefix.count(".") + 1 if prefix else 0
        children: dict[str, list[str]] = {}
        for name in names:
            children.setdefault(".".join(name.split(".")[: depth + 1]), []).append(name)
        for child, members in children.items():
            visit(child, members)

    visit("", list(status))
    return groups


def init_report(model: nn.Module, loaded: dict[int, torch.Tensor]) -> dict[str, list[str]]:
    """Name the parameter groups a stage loaded, re-initialised and froze (after ``prepare``)."""
    tensors = model.state_dict(keep_vars=True)
    filled = group_names(
        {k: "loaded" if id(t) in loaded else "reinitialised" for k, t in tensors.items()}
    )
    params = {
        k: "frozen" if not p.requires_grad else "trained" for k, p in model.named_parameters()
    }
    return {
        "loaded": filled.get("loaded", []),
        "reinitialised": filled.get("reinitialised", []),
        "frozen": group_names(params).get("frozen", []) if params else [],
    }
