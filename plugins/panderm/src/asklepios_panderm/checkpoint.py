"""Load PanDerm's released checkpoint into the plugin's encoder or a plain timm ViT (§3).

The release is a flat ``name -> tensor`` dict whose encoder keys start with ``encoder.`` next to
pretraining-only keys (``decoder.*``, ``teacher.*``, ``regresser.*``, ``mask_token``...). The
rules: unwrap ``model``/``module``/``state_dict`` nesting; keep only keys that start with the
prefix and strip it once, anchored (the repo's ``str.replace`` would also rewrite
``alignment_encoder.``); accept an unprefixed dict; then map names onto the target and account
for every tensor: each backbone tensor must be loaded, and no encoder key may be left over
(``strict``), else the error names the file and the keys.

Mapping to timm (verified equal outputs in the spec): ``q_bias`` and ``v_bias`` become
``qkv.bias = [q_bias, 0, v_bias]``, ``gamma_1/2`` become ``ls1/ls2.gamma``, and for mean pooling
the pretrained ``norm.*`` goes to ``fc_norm.*`` (the repo renames it the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from asklepios_sdk import Adapter, Batch, BuildContext, ComponentError, WeightsError
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from asklepios_panderm.params import PanDermCheckpointParams

__all__ = [
    "LOADED",
    "PanDermCheckpoint",
    "backbone_keys",
    "load_encoder_state",
    "select_encoder_state",
    "to_timm_state",
]

_NOT_PRETRAINED = ("relative_position_bias_table", "relative_position_index")

LOADED: dict[str, list[dict[str, Any]]] = {}
"""Records of the checkpoints loaded in this process, by run directory (``ctx.output_dir``).

The ``record_metadata`` hook reads them, so a checkpoint loaded for an earlier stage is recorded
even when the last stage's model no longer holds the adapter.
"""


def select_encoder_state(
    state: Mapping[str, Tensor], prefix: str = "encoder."
) -> dict[str, Tensor]:
    """Return the encoder tensors: keys with ``prefix``, stripped once; all keys if none has it."""
    tensors = {str(k): v for k, v in state.items() if isinstance(v, Tensor)}
    if prefix and any(k.startswith(prefix) for k in tensors):
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return tensors


def to_timm_state(state: Mapping[str, Tensor], *, fc_norm: bool = False) -> dict[str, Tensor]:
    """Rename PanDerm encoder keys to timm ``VisionTransformer`` keys (``fc_norm``: mean pool)."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(".attn.v_bias"):
            continue
        if key.endswith(".attn.q_bias"):
            base = key[: -len("q_bias")]
            v_bias = state.get(base + "v_bias")
            if v_bias is None:
                raise WeightsError(f"{base}q_bias has no matching {base}v_bias")
            out[base + "qkv.bias"] = torch.cat([value, torch.zeros_like(value), v_bias])
        elif key.endswith(".gamma_1") or key.endswith(".gamma_2"):
            out[f"{key[: -len('gamma_1')]}ls{key[-1]}.gamma"] = value
        else:
            out[key] = value
    return _norm_to_fc_norm(out) if fc_norm else out


def _norm_to_fc_norm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    return {("fc_" + k if k.startswith("norm.") else k): v for k, v in state.items()}


def backbone_keys(encoder: nn.Module) -> set[str]:
    """Return the keys of ``encoder`` that a pretrained checkpoint must provide."""
    return {
        k
        for k in encoder.state_dict()
        if not k.startswith("head.") and not any(part in k for part in _NOT_PRETRAINED)
    }


def _preview(keys: set[str] | list[str], limit: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_encoder_state(
    encoder: nn.Module,
    state: Mapping[str, Tensor],
    *,
    timm_names: bool,
    strict: bool = True,
    source: str = "the checkpoint",
) -> dict[str, Any]:
    """Load PanDerm encoder tensors (prefix already stripped) into ``encoder``; account for all.

    Args:
        encoder: a :class:`~asklepios_panderm.vit.PanDermEncoder` or a timm ViT.
        state: PanDerm-named encoder tensors.
        timm_names: ``encoder`` uses timm's names (convert q/v bias and gammas).
        strict: fail on a missing backbone tensor or a left-over encoder key.
        source: what to call the file in errors.

    Returns:
        ``{"loaded", "missing", "unexpected"}`` key lists.
    """
    mean_pool = getattr(encoder, "fc_norm", None) is not None and isinstance(
        getattr(encoder, "norm", None), nn.Identity
    )
    if timm_names:
        state = to_timm_state(state, fc_norm=mean_pool)
    elif mean_pool:
        state = _norm_to_fc_norm(dict(state))
    own = encoder.state_dict()
    expected = backbone_keys(encoder)
    if not expected & set(state):
        raise WeightsError(
            f"{source} holds no PanDerm backbone tensor (keys start like: "
            f"{_preview(list(state))}); expected keys such as 'encoder.cls_token' and "
            "'encoder.blocks.0.attn.qkv.weight' (set 'prefix' if another prefix is used)"
        )
    missing = expected - set(state)
    unexpected = set(state) - set(own)
    shapes = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if shapes:
        raise WeightsError(
            f"{source}: {len(shapes)} tensor shape(s) differ from the model: {_preview(shapes)}; "
            "build the backbone with the checkpoint's variant (large/base), img_size and patch_size"
        )
    if strict and (missing or unexpected):
        detail = []
        if missing:
            detail.append(f"missing backbone tensors ({len(missing)}): {_preview(missing)}")
        if unexpected:
            detail.append(f"unexpected encoder keys ({len(unexpected)}): {_preview(unexpected)}")
        raise WeightsError(
            f"{source} does not match the PanDerm backbone: {'; '.join(detail)}. Check the "
            "variant (large/base) and 'prefix', or set strict: false to load the matching part"
        )
    loaded = sorted(k for k in state if k in own)
    with torch.no_grad():
        for key in loaded:
            own[key].copy_(state[key])
    return {"loaded": loaded, "missing": sorted(missing), "unexpected": sorted(unexpected)}


def _find_target(model: nn.Module, target: str) -> tuple[nn.Module, bool]:
    """Return ``(encoder, uses_timm_names)`` inside ``model`` for ``target``."""
    if target == "panderm":
        for module in model.modules():
            encoder = getattr(module, "encoder", None)
            if hasattr(encoder, "pooled") and hasattr(encoder, "intermediates"):
                return encoder, isinstance(encoder, VisionTransformer)  # type: ignore[return-value]
        raise ComponentError(
            "panderm.checkpoint: target 'panderm' needs a panderm.vit or panderm.upernet "
            f"backbone, but the model is a {type(model).__name__}; use target: timm for a "
            "timm ViT (core.timm)"
        )
    for module in model.modules():
        if isinstance(module, VisionTransformer):
            return module, True
    raise ComponentError(
        f"panderm.checkpoint: target 'timm' found no timm VisionTransformer in the "
        f"{type(model).__name__} model; use core.timm with a vit_* model_name, or target: panderm"
    )


class PanDermCheckpoint(Adapter):
    """Load the released PanDerm checkpoint into the encoder (strict prefix rule, timm mapping).

    Reads a local file (``torch.load(weights_only=True)`` or safetensors), checks its sha256 when
    given, and keeps what it loaded in :attr:`record` (path, sha256, counts), which the plugin's
    ``record_metadata`` hook writes into the run record (via :data:`LOADED`). ``pos_embed`` is
    frozen, as in PanDerm (a timm ViT learns it otherwise). Then it passes batches through.
    """

    def __init__(self, params: PanDermCheckpointParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params
        self.run_dir = ctx.output_dir or ""
        self.record: dict[str, Any] = {}

    def wrap(self, model: nn.Module) -> nn.Module:
        from asklepios_sdk.weights import file_sha256, read_state_dict

        params = self.params
        path = Path(params.path).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"panderm.checkpoint: {path} not found; PanDerm's weights are not downloaded: "
                "put the released .pth there or fix 'path'"
            )
        digest = file_sha256(path)
        if params.sha256 is not None and params.sha256.lower() != digest:
            raise WeightsError(
                f"panderm.checkpoint: {path} has sha256 {digest}, the config expects "
                f"{params.sha256}; the file changed or is another file"
            )
        encoder, timm_names = _find_target(model, params.target)
        state = select_encoder_state(read_state_dict(path), params.prefix)
        result = load_encoder_state(
            encoder,
            state,
            timm_names=timm_names,
            strict=params.strict,
            source=f"panderm.checkpoint {path}",
        )
        pos_embed = getattr(encoder, "pos_embed", None)
        if isinstance(pos_embed, nn.Parameter):
            pos_embed.requires_grad_(False)  # PanDerm's table is fixed, also in a timm ViT
        self.record = {
            "path": str(path),
            "sha256": digest,
            "target": params.target,
            "prefix": params.prefix,
            "loaded": len(result["loaded"]),
            "missing_keys": result["missing"],
            "unexpected_keys": result["unexpected"],
        }
        LOADED.setdefault(self.run_dir, []).append(self.record)
        return super().wrap(model)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return self.model(batch)

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> Batch:
        """Return a batch the wrapped model accepts."""
        inner = getattr(self, "model", None)
        maker = getattr(inner, "example_batch", None)
        return maker(ctx, batch_size) if callable(maker) else super().example_batch(ctx, batch_size)
