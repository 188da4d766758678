"""Tiny SAM and CLIP configurations for the tests, with weight files the tests write."""

from __future__ import annotations

import functools
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import torch
from asklepios_sdk import BuildContext, DataFacts
from asklepios_sdk.testing import host_components
from torch import nn

IMG = 128
"""Input side of the tiny SAM: patch 16 -> an 8 x 8 token grid (spec 6)."""

ENCODER = {
    "img_size": IMG,
    "embed_dim": 64,
    "depth": 2,
    "num_heads": 2,
    "window_size": 4,
    "global_attn_indexes": [1],
    "out_chans": 32,
}
DECODER = {"mlp_dim": 64, "num_heads": 2, "iou_head_hidden_dim": 32}

TINY_CLIP: dict[str, Any] = {
    "model": "tiny",
    "model_cfg": {
        "embed_dim": 16,
        "vision_cfg": {
            "image_size": 32,
            "layers": 2,
            "width": 32,
            "patch_size": 8,
            "head_width": 16,
        },
        "text_cfg": {
            "context_length": 24,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    },
}
"""A tiny open_clip architecture; the prior branch runs it at 32 px (a 4 x 4 grid)."""

LESIONS = ("MA", "HE", "EX", "SE")
FACTS = DataFacts(
    task="segmentation",
    num_samples=8,
    in_channels=3,
    image_size=(IMG, IMG),
    extras={
        "lesions": LESIONS,
        "item_images": (0, 0, 1, 1, 2, 3, 3, 3),
        "item_lesions": (0, 2, 0, 1, 3, 0, 1, 2),
    },
)
CTX = BuildContext(data=FACTS, seed=0, components=host_components)

_ROOT = Path(tempfile.mkdtemp(prefix="tpdrseg-tests-"))


def tiny_sam(seed: int = 0) -> nn.Module:
    """Return a randomly initialised tiny ``segment_anything`` Sam with non-zero pos/rel tables."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    torch.manual_seed(seed)
    encoder = ImageEncoderViT(
        img_size=IMG,
        patch_size=16,
        embed_dim=64,
        depth=2,
        num_heads=2,
        mlp_ratio=4,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=(1,),
        window_size=4,
        out_chans=32,
    )
    with torch.no_grad():  # SAM initialises these to zeros, which would hide a missing pos_embed
        for name, parameter in encoder.named_parameters():
            if name == "pos_embed" or "rel_pos" in name:
                parameter.normal_()
    sam = Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(8, 8), input_image_size=(IMG, IMG), mask_in_chans=16
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32,
            iou_head_depth=3,
            iou_head_hidden_dim=32,
        ),
    )
    return sam.eval()


@functools.cache
def sam_checkpoint(seed: int = 0) -> str:
    """Write the tiny SAM's full state dict (as SAM's .pth files hold it) once; return its path."""
    path = _ROOT / f"tiny_sam_{seed}.pth"
    torch.save(tiny_sam(seed).state_dict(), path)
    return str(path)


@functools.cache
def clip_checkpoint(seed: int = 0) -> str:
    """Write a tiny open_clip state dict once; return its path."""
    import open_clip

    torch.manual_seed(seed)
    cfg = dict(TINY_CLIP["model_cfg"])
    model = open_clip.CLIP(**cfg)
    path = _ROOT / f"tiny_clip_{seed}.pt"
    torch.save(model.state_dict(), path)
    return str(path)


def encoder_params(**changes: Any) -> dict[str, Any]:
    """Return tpdrseg.sam_encoder params of the tiny SAM loaded from its checkpoint."""
    return {**ENCODER, "checkpoint": sam_checkpoint(), **changes}


def prior_params(**changes: Any) -> dict[str, Any]:
    """Return tpdrseg.explicit_prior params with the tiny CLIP loaded from its file."""
    return {"clip": TINY_CLIP, "clip_file": clip_checkpoint(), "input_size": 32, **changes}


def decoder_params(**changes: Any) -> dict[str, Any]:
    """Return tpdrseg.mask_decoder params of the tiny SAM decoder from its checkpoint."""
    return {**DECODER, "checkpoint": sam_checkpoint(), **changes}


def build(
    kind_class: Any, params_class: Any, params: dict[str, Any], ctx: BuildContext = CTX
) -> Any:
    """Build one component from its class and params."""
    return kind_class(params_class(**params), ctx)


def encoder(**changes: Any) -> nn.Module:
    """Return the tiny tpdrseg.sam_encoder."""
    from asklepios_tpdrseg.encoder import SamImageEncoder
    from asklepios_tpdrseg.params import SamImageEncoderParams

    return SamImageEncoder(SamImageEncoderParams(**encoder_params(**changes)), CTX)


def chain(*, injector: dict[str, Any] | None = None, upto: str = "decoder") -> nn.Module:
    """Return encoder -> explicit prior -> injector -> prompt generator -> decoder (tiny)."""
    from asklepios_sdk import EmptyParams
    from asklepios_tpdrseg.decoder import MaskDecoderHead, PromptGenerator
    from asklepios_tpdrseg.injector import Injector
    from asklepios_tpdrseg.params import (
        ExplicitPriorParams,
        InjectorParams,
        MaskDecoderHeadParams,
    )
    from asklepios_tpdrseg.prior import ExplicitPrior

    model: nn.Module = encoder()
    model = ExplicitPrior(ExplicitPriorParams(**prior_params()), CTX).wrap(model)
    if upto == "prior":
        return model
    model = Injector(InjectorParams(**(injector or {})), CTX).wrap(model)
    if upto == "injector":
        return model
    model = PromptGenerator(EmptyParams(), CTX).wrap(model)
    if upto == "prompts":
        return model
    return MaskDecoderHead(MaskDecoderHeadParams(**decoder_params()), CTX).wrap(model)


def batch(size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Return SAM-sized random images, lesion indices and sparse masks."""
    gen = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(size, 3, IMG, IMG, generator=gen),
        "lesion": torch.arange(size) % len(LESIONS),
        "mask": (torch.rand(size, 1, IMG, IMG, generator=gen) > 0.95).to(torch.uint8),
    }


def _write_image(path: Path, array: Any) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def fake_idrid(
    root: Path, train: int = 3, test: int = 2, height: int = 30, width: int = 45
) -> Path:
    """Write an IDRiD-layout folder of small random images; SE masks only on even images."""
    import numpy as np
    from asklepios_tpdrseg.datasets import IDRID_IMAGES, IDRID_MASKS, IDRID_SPLITS

    rng = np.random.default_rng(0)
    folders = {"MA": "1. Microaneurysms", "HE": "2. Haemorrhages", "EX": "3. Hard Exudates"}
    folders["SE"] = "4. Soft Exudates"
    number = 0
    for split, count in (("train", train), ("test", test)):
        for _ in range(count):
            number += 1
            stem = f"IDRiD_{number:02d}"
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            _write_image(root / IDRID_IMAGES / IDRID_SPLITS[split] / f"{stem}.jpg", pixels)
            for lesion, folder in folders.items():
                if lesion == "SE" and number % 2:
                    continue
                mask = np.zeros((height, width, 3), dtype=np.uint8)
                mask[5:12, 10 + number : 20 + number, 0] = 255  # IDRiD masks are red on black
                target = root / IDRID_MASKS / IDRID_SPLITS[split] / folder / f"{stem}_{lesion}.tif"
                _write_image(target, mask)
    return root


def fake_ddr(root: Path, height: int = 30, width: int = 45) -> Path:
    """Write a DDR-layout folder (train 2, valid 1, test 1 images; grey masks)."""
    import numpy as np

    rng = np.random.default_rng(1)
    for split, count in (("train", 2), ("valid", 1), ("test", 1)):
        for i in range(count):
            stem = f"007-{split}-{i}"
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            _write_image(root / split / "image" / f"{stem}.jpg", pixels)
            for lesion in LESIONS:
                mask = np.zeros((height, width), dtype=np.uint8)
                mask[3 : 3 + 4 * (i + 1), 4:9] = 255
                _write_image(root / split / "label" / lesion / f"{stem}.tif", mask)
    return root


IDRID_ROOT = str(fake_idrid(_ROOT / "idrid"))
