"""AU conditioning through IP-Adapter-style decoupled cross-attention (SynFER §2.3).

An AU vector ``a ∈ {0,1}^41`` is projected to ``n_tokens`` tokens of the text width and appended
to the caption tokens. In every UNet cross-attention layer (``attn2``) the last ``n_tokens`` are
split off and attended separately:

    out = Attn(Q, K_txt, V_txt) + s · Attn(Q, K_au, V_au),
    K_au = to_k_ip(c_au), V_au = to_v_ip(c_au),

with new bias-free ``to_k_ip`` / ``to_v_ip`` initialised by copying that layer's ``to_k`` /
``to_v``. Self-attention (``attn1``) is unchanged. Only the projector (``image_proj``) and the
``to_k_ip`` / ``to_v_ip`` pairs (``ip_adapter``) are the adapter's parameters, the checkpoint
layout of the reproduction. The unconditional AU token is the projector applied to zeros.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from asklepios_sdk import Adapter, BuildContext, ComponentError, WeightsError
from torch import Tensor, nn

from asklepios_synfer.params import AUAdapterParams

__all__ = [
    "AUAdapter",
    "AUProjector",
    "DecoupledAttnProcessor",
    "DecoupledKV",
    "find_ldm",
    "install_processors",
]


class AUProjector(nn.Module):
    """Map ``[B, au_dim]`` AU vectors to ``[B, n_tokens, dim]`` tokens (an MLP of ``depth``)."""

    def __init__(
        self, au_dim: int, dim: int, n_tokens: int = 1, depth: int = 1, hidden: int | None = None
    ) -> None:
        super().__init__()
        self.n_tokens, self.dim = n_tokens, dim
        widths = [au_dim] + [hidden or dim] * (depth - 1) + [dim * n_tokens]
        layers: list[nn.Module] = []
        for i in range(depth):
            layers.append(nn.Linear(widths[i], widths[i + 1]))
            if i < depth - 1:
                layers.append(nn.GELU())
        self.net = nn.Sequential(*layers)

    def forward(self, au: Tensor) -> Tensor:
        return cast(Tensor, self.net(au.float())).view(au.shape[0], self.n_tokens, self.dim)


class DecoupledKV(nn.Module):
    """The AU keys and values of one cross-attention layer: bias-free ``to_k_ip``, ``to_v_ip``."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.to_k_ip = nn.Linear(dim, inner, bias=False)
        self.to_v_ip = nn.Linear(dim, inner, bias=False)


def _weight(linear: nn.Module) -> Tensor:
    """Return a projection's weight, looking through a peft LoRA wrapper to its base layer."""
    base = getattr(linear, "base_layer", linear)
    return cast(Tensor, base.weight)


def _attend(attn: Any, query: Tensor, context: Tensor, k: nn.Module, v: nn.Module) -> Tensor:
    """Return multi-head attention of ``query`` ``[B, heads, N, d]`` over ``context``."""
    batch = context.shape[0]
    key, value = k(context), v(context)
    head_dim = key.shape[-1] // attn.heads
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    return F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)


class DecoupledAttnProcessor:
    """Cross-attention over the text tokens plus ``scale`` × attention over the AU tokens.

    A plain callable (not a module), so the UNet's own state dict is unchanged; its
    ``to_k_ip`` / ``to_v_ip`` live in the adapter (``kv``). ``text_tokens`` is checked on every
    call so that a conditioning without the AU tokens fails instead of splitting text tokens.
    """

    def __init__(self, kv: DecoupledKV, n_tokens: int, scale: float, text_tokens: int) -> None:
        self.kv, self.n_tokens, self.scale, self.text_tokens = kv, n_tokens, scale, text_tokens

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Tensor:
        if encoder_hidden_states is None:
            raise ComponentError("synfer.au_adapter: a cross-attention layer got no context")
        if encoder_hidden_states.shape[1] != self.text_tokens + self.n_tokens:
            raise ComponentError(
                f"synfer.au_adapter: the context has {encoder_hidden_states.shape[1]} tokens; "
                f"expected {self.text_tokens} text + {self.n_tokens} AU tokens (condition "
                "through the AU adapter, which appends them)"
            )
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        text = encoder_hidden_states[:, : self.text_tokens]
        au = encoder_hidden_states[:, self.text_tokens :]
        if attn.norm_cross:
            text = attn.norm_encoder_hidden_states(text)
        head_dim = query.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        out = _attend(attn, query, text, attn.to_k, attn.to_v)
        if self.scale != 0:
            out = out + self.scale * _attend(attn, query, au, self.kv.to_k_ip, self.kv.to_v_ip)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return cast(Tensor, out / attn.rescale_output_factor)


def find_ldm(model: nn.Module) -> Any:
    """Return the ``synfer.ldm`` inside ``model`` (itself, or through adapters' ``model``)."""
    found: Any = model
    while not hasattr(found, "unet") and hasattr(found, "model"):
        found = found.model
    if not hasattr(found, "unet") or not hasattr(found, "max_length"):
        raise ComponentError(
            f"synfer adapters wrap synfer.ldm; got {type(model).__name__}: put them after a "
            "synfer.ldm backbone"
        )
    return found


def install_processors(
    unet: nn.Module, params: AUAdapterParams, text_tokens: int
) -> tuple[nn.ModuleList, int]:
    """Put a decoupled processor into every ``attn2`` of ``unet``; return the K/V pairs, width."""
    processors = dict(cast(Any, unet).attn_processors)
    modules = dict(unet.named_modules())
    layers, width = nn.ModuleList(), 0
    for name in processors:
        if not name.endswith("attn2.processor"):
            continue
        attn = modules[name[: -len(".processor")]]
        to_k, to_v = _weight(attn.to_k), _weight(attn.to_v)
        width = int(to_k.shape[1])
        kv = DecoupledKV(width, int(to_k.shape[0]))
        if params.init_from_text_kv:
            with torch.no_grad():
                kv.to_k_ip.weight.copy_(to_k)
                kv.to_v_ip.weight.copy_(to_v)
        layers.append(kv)
        processors[name] = DecoupledAttnProcessor(kv, params.n_tokens, params.scale, text_tokens)
    if not layers:
        raise ComponentError("synfer.au_adapter: the UNet has no cross-attention (attn2) layers")
    cast(Any, unet).set_attn_processor(processors)
    return layers, width


class AUAdapter(Adapter):
    """Inject AU vectors through decoupled cross-attention in every attn2 (IP-Adapter style).

    Wraps ``synfer.ldm`` (or a model holding it as ``model``); reads ``batch["meta"]["au"]``
    (``[B, au_dim]``, 0/1) and appends the projected AU tokens to the caption tokens.
    """

    image_proj: AUProjector
    ip_adapter: nn.ModuleList

    def __init__(self, params: AUAdapterParams, ctx: BuildContext) -> None:
        super().__init__()
        self.params = params

    @property
    def ldm(self) -> Any:
        """Return the wrapped ``synfer.ldm`` (found through any adapters in between)."""
        return find_ldm(self.model)

    def wrap(self, model: nn.Module) -> nn.Module:
        ldm = find_ldm(model)
        self.model = model
        p = self.params
        self.ip_adapter, width = install_processors(ldm.unet, p, int(ldm.max_length))
        self.image_proj = AUProjector(p.au_dim, width, p.n_tokens, p.depth, p.hidden)
        self.image_proj.to(next(ldm.parameters()).device)
        if p.checkpoint is not None:
            self._load(p.checkpoint)
        return self

    def _load(self, path: str) -> None:
        """Load a ``{"image_proj": ..., "ip_adapter": ...}`` checkpoint (the reproduction's).

        Its ``ip_adapter`` may index the K/V pairs by their place among *all* attention
        processors (IP-Adapter's ``ModuleList``, where attn1 entries hold nothing); pairs are
        matched in order.
        """
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or {"image_proj", "ip_adapter"} - set(state):
            raise WeightsError(
                f"synfer.au_adapter: {path} is not an AU-adapter checkpoint with 'image_proj' "
                "and 'ip_adapter'"
            )
        self.image_proj.load_state_dict(state["image_proj"])
        theirs = state["ip_adapter"]
        order = sorted({int(k.split(".", 1)[0]) for k in theirs})
        if len(order) != len(self.ip_adapter):
            raise WeightsError(
                f"synfer.au_adapter: {path} has {len(order)} K/V pairs, the UNet "
                f"{len(self.ip_adapter)} cross-attention layers"
            )
        ours = {
            f"{i}.{k.split('.', 1)[1]}": v
            for i, index in enumerate(order)
            for k, v in theirs.items()
            if int(k.split(".", 1)[0]) == index
        }
        self.ip_adapter.load_state_dict(ours)

    def tokens(self, au: Tensor) -> Tensor:
        """Return the AU tokens ``[B, n_tokens, dim]`` of AU vectors ``[B, au_dim]``."""
        if au.dim() != 2 or au.shape[1] != self.params.au_dim:
            raise ComponentError(
                f"synfer.au_adapter: AU vectors must be [B, {self.params.au_dim}], got "
                f"{tuple(au.shape)}"
            )
        return cast(Tensor, self.image_proj(au))

    def uncond_tokens(self, batch: int, device: torch.device) -> Tensor:
        """Return the unconditional AU tokens: the projector applied to zeros."""
        return self.tokens(torch.zeros(batch, self.params.au_dim, device=device))

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        meta = batch.get("meta") or {}
        au = meta.get("au") if isinstance(meta, dict) else None
        if au is None:
            raise ComponentError(
                "synfer.au_adapter: the batch has no meta.au (AU vectors); use a dataset that "
                "gives them, such as synfer.fetext"
            )
        return cast(dict[str, Tensor], self.model({**batch, "cond_tokens": self.tokens(au)}))

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return the wrapped synfer.ldm's example batch (images, captions, AU vectors)."""
        return cast(dict[str, Any], self.ldm.example_batch(ctx, batch_size))
