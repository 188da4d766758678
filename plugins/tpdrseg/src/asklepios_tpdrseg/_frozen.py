"""Frozen foundation weights referenced by file and sha256 instead of copied into checkpoints.

A module that loads frozen weights from a local file (SAM's encoder, CLIP) calls
:meth:`ReferencedWeights.reference_weights`. From then on its ``state_dict()`` leaves those
parameters out as long as they stay frozen, and carries ``{"file", "sha256"}`` as extra state;
``load_state_dict`` fills the left-out entries from the weights the module was built with, after
checking that the sha256 matches, so a checkpoint resumes only on top of the same file. Weights
built at random (tests) have nothing to refer to and stay in the state dict.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from asklepios_sdk import WeightsError
from torch import nn

__all__ = ["ReferencedWeights", "configured_weights", "file_digest", "referenced_weights"]


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    from asklepios_sdk.weights import file_sha256

    return file_sha256(path)


def file_digest(path: str | Path) -> str:
    """Return the sha256 of ``path``, computed once per file version in this process."""
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    return _digest(str(resolved), stat.st_size, stat.st_mtime_ns)


def _drop_referenced(
    module: ReferencedWeights, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    params = dict(module.named_parameters())
    for name in module.referenced_names:
        if not params[name].requires_grad:
            state_dict.pop(prefix + name, None)


def _fill_referenced(
    module: ReferencedWeights,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    params = dict(module.named_parameters())
    for name in module.referenced_names:
        state_dict.setdefault(prefix + name, params[name].detach())


class ReferencedWeights(nn.Module):
    """A module whose frozen file-loaded parameters are referenced, not saved (see module doc)."""

    referenced_names: frozenset[str] = frozenset()
    weights_source: dict[str, str] | None = None

    def reference_weights(
        self, names: Iterable[str], path: str | Path | None = None, **identity: str
    ) -> None:
        """Refer to parameters ``names`` (relative to this module) by their source.

        Args:
            names: the frozen parameters loaded from the source.
            path: the local file they came from (recorded with its sha256).
            identity: what names the source when no file is known (e.g. an open_clip tag).
        """
        source = dict(identity)
        if path is not None:
            source["file"] = str(Path(path).expanduser().resolve())
            source["sha256"] = file_digest(path)
        self.referenced_names = frozenset(names)
        self.weights_source = source
        self.register_state_dict_post_hook(_drop_referenced)
        self.register_load_state_dict_pre_hook(_fill_referenced)

    def get_extra_state(self) -> dict[str, str]:
        """Return the file and sha256 of the referenced weights (empty when random)."""
        return dict(self.weights_source or {})

    def set_extra_state(self, state: Any) -> None:
        """Check that a checkpoint was made on top of the weights this module was built with.

        Raises:
            WeightsError: the checkpoint refers to another file (sha256) than this module
                loaded, or to a file while this module was built without one.
        """
        saved = dict(state or {})
        if not saved:
            return
        own = self.weights_source or {}
        if _identity(saved) != _identity(own):
            raise WeightsError(
                f"{type(self).__name__}: this checkpoint was trained on top of the frozen weights "
                f"{_describe(saved)}, but the model was built from {_describe(own)}; build it "
                "from the same weights (the component's checkpoint / CLIP file)"
            )


def _identity(source: dict[str, str]) -> Any:
    """Return what identifies a weights source: its sha256, else its other fields."""
    if "sha256" in source:
        return source["sha256"]
    return tuple(sorted((k, v) for k, v in source.items() if k != "file"))


def _describe(source: dict[str, str]) -> str:
    if not source:
        return "random weights"
    return ", ".join(f"{k} {v}" for k, v in sorted(source.items()))


def referenced_weights(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Return ``{module path: {file, sha256, class, tensors}}`` of every referencing module."""
    found: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        if isinstance(module, ReferencedWeights) and module.weights_source:
            found[name or "<model>"] = {
                **module.weights_source,
                "class": type(module).__name__,
                "tensors": len(module.referenced_names),
            }
    return found


_WEIGHT_FIELDS = {
    "tpdrseg.sam_encoder": ("checkpoint",),
    "tpdrseg.mask_decoder": ("checkpoint",),
    "tpdrseg.explicit_prior": ("clip_file",),
}


def configured_weights(config: Any) -> dict[str, dict[str, Any]]:
    """Return ``{config path: {file, sha256}}`` of the frozen-weight files a config names.

    Reads ``model.backbone`` and ``model.adapters`` (and each stage's model) of a validated
    experiment config; an explicit prior's open_clip tag is recorded as ``{"open_clip": tag}``.
    """
    found: dict[str, dict[str, Any]] = {}
    models = [("model", getattr(config, "model", None))]
    for stage in getattr(config, "stages", None) or []:
        models.append((f"stages.{stage.name}.model", getattr(stage, "model", None)))
    for where, model in models:
        if model is None:
            continue
        specs = [(f"{where}.backbone", getattr(model, "backbone", None))]
        specs += [(f"{where}.adapters.{i}", s) for i, s in enumerate(model.adapters or [])]
        for path, spec in specs:
            if spec is None:
                continue
            params = dict(spec.params)
            for field in _WEIGHT_FIELDS.get(spec.type, ()):
                if params.get(field):
                    found[path] = {"file": str(params[field]), "sha256": file_digest(params[field])}
            clip = params.get("clip") or {}
            if (
                spec.type == "tpdrseg.explicit_prior"
                and path not in found
                and clip.get("pretrained")
            ):
                found[path] = {"open_clip": f"{clip.get('model')}/{clip['pretrained']}"}
    return found
