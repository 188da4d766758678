"""Built-in backbone ``core.open_clip``: any open_clip architecture, frozen by default.

Weights come from a local file (``pretrained_file``) or from an open_clip tag that is already in
the user's cache (``pretrained`` + ``cache_dir``); nothing is ever downloaded. Random
initialisation must be asked for explicitly (``random_init: true``, for tests and smoke runs) so
that a missing checkpoint can never silently turn into an untrained model.

The backbone maps a batch of images (or, with ``inputs: features``, of cached image features) to
unit-norm image ``features`` and zero-shot ``logits`` against the class names of the training
split; it also exposes the text tower (:meth:`OpenCLIPBackbone.encode_text`,
:meth:`OpenCLIPBackbone.encode_prompts`, :meth:`OpenCLIPBackbone.encode_token_embeddings`), the
tokenizer and the logit scale for adapters such as zero-shot heads and prompt learners.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from asklepios_sdk import Backbone, BuildContext, ComponentError, WeightsError
from torch import Tensor, nn

from asklepios.builtins.params import OpenCLIPBackboneParams

__all__ = ["OpenCLIPBackbone", "load_open_clip_weights", "resolve_cached_weights"]


def _cache_candidates(model: str, tag: str, cache_dir: str | None) -> list[Path]:
    """Return the local paths where open_clip's downloader would have put ``model``/``tag``."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        raise WeightsError(
            f"core.open_clip: open_clip knows no pretrained tag {tag!r} for {model!r}; "
            f"known tags: {open_clip.list_pretrained_tags_by_model(model)}"
        )
    paths: list[Path] = []
    if cfg.get("file"):
        paths.append(Path(cfg["file"]))
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        # open_clip writes 'org/name/file.bin', or 'org/name/' for its default file name
        repo_id, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        stem = filename.rsplit(".", 1)[0]
        names = ["open_clip_model.safetensors", f"{stem}.safetensors", filename]
        for name in dict.fromkeys(names):
            found = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(found, str):
                paths.insert(0, Path(found))
            else:
                hub_root = cache_dir or "~/.cache/huggingface/hub"
                paths.append(Path(hub_root) / f"models--{repo_id.replace('/', '--')}" / name)
    url = cfg.get("url", "")
    if url:
        root = Path(cache_dir).expanduser() if cache_dir else Path("~/.cache/clip").expanduser()
        paths.append(root / os.path.basename(url))
    return paths


def resolve_cached_weights(model: str, tag: str, cache_dir: str | None = None) -> Path:
    """Return the cached checkpoint of open_clip tag ``tag`` for ``model``, never downloading.

    Raises:
        WeightsError: the tag is unknown or no cached file exists; the message lists every path
            tried and how to provide a local file instead.
    """
    tried = _cache_candidates(model, tag, cache_dir)
    for path in tried:
        if path.expanduser().is_file():
            return path.expanduser()
    listing = "\n  ".join(str(p) for p in tried) or "(no cache location known for this tag)"
    raise WeightsError(
        f"core.open_clip: weights {model}/{tag} are not in the local cache; tried:\n  {listing}\n"
        "asklepios never downloads weights at run time: download them once with "
        f"open_clip.create_model({model!r}, pretrained={tag!r}) on a machine with network access, "
        "or set 'pretrained_file' to a local checkpoint."
    )


def _create_model(params: OpenCLIPBackboneParams) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Construct the open_clip model (random init), its tokenizer and preprocess config."""
    import open_clip

    if params.model_cfg is not None:
        cfg = dict(params.model_cfg)
        missing = {"embed_dim", "vision_cfg", "text_cfg"} - cfg.keys()
        if missing:
            raise ComponentError(
                f"core.open_clip: 'model_cfg' lacks {sorted(missing)}; it needs embed_dim, "
                "vision_cfg and text_cfg as in open_clip's model_configs/*.json"
            )
        custom_text = cfg.pop("custom_text", False) or "hf_model_name" in cfg["text_cfg"]
        cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
        model = cls(**cfg)
        context_length = int(cfg["text_cfg"].get("context_length", 77))
        tokenizer = open_clip.SimpleTokenizer(context_length=context_length)
        size = cfg["vision_cfg"].get("image_size", 224)
        preprocess = {
            "size": size,
            "mean": open_clip.OPENAI_DATASET_MEAN,
            "std": open_clip.OPENAI_DATASET_STD,
        }
        return model, tokenizer, preprocess
    name = params.model.replace("/", "-")
    if not name.startswith("local-dir:") and name not in open_clip.list_models():
        raise ComponentError(
            f"core.open_clip: unknown architecture {params.model!r}; choose one of "
            f"open_clip.list_models() (e.g. 'ViT-B-32', 'ViT-B-16', 'RN50') or give 'model_cfg'"
        )
    model = open_clip.create_model(name, pretrained=None, load_weights=False, pretrained_text=False)
    tokenizer = open_clip.get_tokenizer(name)
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    preprocess = {
        "size": cfg.get("size", getattr(model.visual, "image_size", 224)),
        "mean": cfg.get("mean", open_clip.OPENAI_DATASET_MEAN),
        "std": cfg.get("std", open_clip.OPENAI_DATASET_STD),
    }
    return model, tokenizer, preprocess


def load_open_clip_weights(model: nn.Module, path: str | Path) -> None:
    """Load an open_clip / OpenAI checkpoint from a local file into ``model`` (strict).

    Raises:
        WeightsError: the file is missing, unreadable or does not match the architecture.
    """
    import open_clip

    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"core.open_clip: pretrained_file {str(path)!r} does not exist; give the path of a "
            "local open_clip checkpoint (.pt, .bin or .safetensors)"
        )
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True)
    except Exception as err:  # open_clip raises RuntimeError/KeyError/pickle errors
        raise WeightsError(
            f"core.open_clip: could not load {str(path)!r} into this architecture: {err}. "
            "Check that 'model' (or 'model_cfg') matches the checkpoint."
        ) from err


class OpenCLIPBackbone(Backbone):
    """Wrap any open_clip model, weights from a local file or cache, frozen by default.

    The model maps images (or, with ``inputs: features``, cached image features) to unit-norm
    image ``features`` and zero-shot ``logits`` against the class names of the data facts, and
    exposes the text tower (:meth:`encode_text`, :meth:`encode_prompts`,
    :meth:`encode_token_embeddings`), the tokenizer and the logit scale to adapters.

    Args:
        params: the validated params (architecture, weight source, frozen, inputs, preprocess,
            class_prompts).
        ctx: the build context; its data facts give the class names (or ``num_classes``, named
            ``"class i"``) of the zero-shot logits.

    Raises:
        ComponentError: unknown architecture or incomplete ``model_cfg``.
        WeightsError: no weight source and no ``random_init``, or weights that do not load.
    """

    clip: Any  # open_clip's CLIP / CustomTextCLIP (untyped)
    pixel_mean: Tensor
    pixel_std: Tensor
    class_text: Tensor

    def __init__(self, params: OpenCLIPBackboneParams, ctx: BuildContext) -> None:
        super().__init__()
        model, tokenizer, preprocess = _create_model(params)
        if params.pretrained_file:
            load_open_clip_weights(model, params.pretrained_file)
        elif params.pretrained:
            load_open_clip_weights(
                model, resolve_cached_weights(params.model, params.pretrained, params.cache_dir)
            )
        elif not params.random_init:
            raise WeightsError(
                f"core.open_clip: no weights for {params.model!r}: set 'pretrained_file' to a "
                "local checkpoint, or 'pretrained' to a tag already in your open_clip cache; set "
                "'random_init: true' only for tests and smoke runs"
            )
        self.clip = model
        self.tokenizer = tokenizer
        self.params = params
        self.frozen = params.frozen
        size = preprocess["size"]
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.register_buffer("pixel_mean", torch.tensor(preprocess["mean"]).view(1, -1, 1, 1))
        self.register_buffer("pixel_std", torch.tensor(preprocess["std"]).view(1, -1, 1, 1))
        class_names = ctx.data.class_names
        if class_names is None and ctx.data.num_classes:
            class_names = tuple(f"class {i}" for i in range(ctx.data.num_classes))
        self.class_names = tuple(class_names) if class_names else None
        self.feature_dim = int(self._embed_dim())
        self.register_buffer("class_text", torch.empty(0), persistent=False)
        if self.frozen:
            for parameter in self.clip.parameters():
                parameter.requires_grad_(False)
            self.clip.eval()

    def _embed_dim(self) -> int:
        projection = getattr(self.clip, "text_projection", None)
        if isinstance(projection, nn.Linear):
            return projection.out_features
        if isinstance(projection, Tensor):
            return int(projection.shape[-1])
        with torch.no_grad():
            return int(self.encode_text(["a"]).shape[-1])

    def train(self, mode: bool = True) -> OpenCLIPBackbone:
        """Set training mode; a frozen model keeps its towers in eval mode (no dropout)."""
        super().train(mode)
        if self.frozen:
            self.clip.eval()
        return self

    @property
    def logit_scale(self) -> Tensor:
        """Return the CLIP temperature as a multiplier, ``exp(logit_scale)``."""
        return self.clip.logit_scale.exp()

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        """Tokenize ``texts`` with the model's tokenizer, on the model's device."""
        return self.tokenizer(list(texts)).to(self.pixel_mean.device)

    def encode_image(self, images: Tensor) -> Tensor:
        """Return unit-norm image features of ``(B, 3, H, W)`` images (in [0, 1] if preprocess)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ComponentError(
                f"core.open_clip: expects (B, 3, H, W) RGB images, got {tuple(images.shape)}; "
                "convert grey images to 3 channels (e.g. core.digits channels: 3), or set "
                "'inputs: features' when the batch carries cached features"
            )
        if self.params.preprocess:
            if tuple(images.shape[-2:]) != self.image_size:
                images = F.interpolate(
                    images, size=self.image_size, mode="bicubic", align_corners=False
                )
            images = (images - self.pixel_mean) / self.pixel_std
        return F.normalize(self.clip.encode_image(images).float(), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> Tensor:
        """Return unit-norm text features of ``texts``, shape ``(len(texts), d)``."""
        return F.normalize(self.clip.encode_text(self.tokenize(texts)).float(), dim=-1)

    def encode_prompts(self, templates: Sequence[str], class_names: Sequence[str]) -> Tensor:
        """Return ``(C, d)`` class text features: each template filled, averaged, re-normalised.

        Raises:
            ComponentError: a template has no ``{}`` placeholder.
        """
        if not templates or any("{}" not in t for t in templates):
            raise ComponentError(
                f"core.open_clip: prompt templates {list(templates)!r} must each contain '{{}}'"
            )
        texts = [t.format(name) for name in class_names for t in templates]
        features = self.encode_text(texts).view(len(class_names), len(templates), -1)
        return F.normalize(features.mean(dim=1), dim=-1)

    def encode_token_embeddings(self, embeddings: Tensor, tokens: Tensor) -> Tensor:
        """Run the text transformer on given token embeddings (prompt learning, e.g. CoOp).

        Args:
            embeddings: ``(N, L, width)`` token embeddings (learned context already inserted).
            tokens: ``(N, L)`` token ids whose end-of-text position selects the pooled token.

        Returns:
            Unit-norm text features ``(N, d)``.

        Raises:
            ComponentError: the model's text tower is not open_clip's built-in transformer.
        """
        from open_clip.transformer import text_global_pool

        clip = self.clip
        if not hasattr(clip, "token_embedding"):
            raise ComponentError(
                "core.open_clip: prompt learning needs the built-in CLIP text transformer; this "
                "architecture uses a custom (e.g. Hugging Face) text tower"
            )
        cast_dtype = clip.transformer.get_cast_dtype()
        x = embeddings.to(cast_dtype) + clip.positional_embedding.to(cast_dtype)
        x = clip.transformer(x, attn_mask=clip.attn_mask)
        x = clip.ln_final(x)
        x = text_global_pool(
            x, tokens, clip.text_pool_type, eos_token_id=getattr(clip, "text_eos_id", None)
        )
        projection = clip.text_projection
        if projection is not None:
            x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return F.normalize(x.float(), dim=-1)

    def token_embedding(self, tokens: Tensor) -> Tensor:
        """Return the text tower's token embeddings of ``tokens`` (``(N, L, width)``)."""
        if not hasattr(self.clip, "token_embedding"):
            raise ComponentError(
                "core.open_clip: this architecture has no built-in token embedding"
            )
        return self.clip.token_embedding(tokens)

    def class_text_features(self) -> Tensor:
        """Return the ``(C, d)`` zero-shot classifier from ``class_prompts`` (computed once)."""
        if self.class_names is None:
            raise ComponentError(
                "core.open_clip: zero-shot logits need class names or num_classes in the data facts"
            )
        if self.class_text.numel() == 0 or self.class_text.device != self.pixel_mean.device:
            with torch.no_grad():
                self.class_text = self.encode_prompts(self.params.class_prompts, self.class_names)
        return self.class_text

    def image_features(self, batch: dict[str, Any]) -> Tensor:
        """Return unit-norm image features of ``batch`` (encoded, or cached ones re-normalised)."""
        inputs = batch["image"]
        if self.params.inputs == "features":
            if inputs.dim() != 2 or inputs.shape[1] != self.feature_dim:
                raise ComponentError(
                    f"core.open_clip: inputs='features' expects batch['image'] of shape (B, "
                    f"{self.feature_dim}), got {tuple(inputs.shape)}; cache features first"
                )
            return F.normalize(inputs.float(), dim=-1)
        if self.frozen:
            with torch.no_grad():
                return self.encode_image(inputs)
        return self.encode_image(inputs)

    def forward(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        features = self.image_features(batch)
        out = {"features": features}
        if self.class_names is not None:
            out["logits"] = self.logit_scale.detach() * features @ self.class_text_features().T
        return out

    def example_batch(self, ctx: BuildContext, batch_size: int = 2) -> dict[str, Any]:
        """Return a tiny batch of images (or features) of the right shape for this model."""
        gen = torch.Generator().manual_seed(0)
        if self.params.inputs == "features":
            image = torch.randn(batch_size, self.feature_dim, generator=gen)
        else:
            image = torch.rand(batch_size, 3, *self.image_size, generator=gen)
        batch: dict[str, Any] = {"image": image}
        if self.class_names:
            batch["label"] = torch.randint(0, len(self.class_names), (batch_size,), generator=gen)
        return batch
