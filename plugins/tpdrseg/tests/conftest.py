"""Switch on the SDK conformance kit for every tpdrseg component, on tiny SAM and CLIP models."""

from __future__ import annotations

from _tiny import (
    FACTS,
    IDRID_ROOT,
    chain,
    clip_checkpoint,
    decoder_params,
    encoder,
    encoder_params,
    prior_params,
)
from asklepios_sdk.testing import Conformance, Override

_NO_LOGITS = (
    "an intermediate stage of the SAM pipeline returns the image embedding, prior or prompts, "
    "not 'logits'; tpdrseg.mask_decoder's forward-backward runs the whole chain and "
    "test_injector.py / test_decoder.py check these stages' outputs and gradients"
)

asklepios_conformance = Conformance(
    "asklepios_tpdrseg.hooks",
    data=FACTS,
    overrides={
        "tpdrseg.sam_encoder": Override(
            params=encoder_params(), skip={"forward-backward": _NO_LOGITS}
        ),
        "tpdrseg.explicit_prior": Override(
            params=prior_params(),
            model=lambda ctx: encoder(),
            skip={"forward-backward": _NO_LOGITS},
        ),
        "tpdrseg.injector": Override(
            model=lambda ctx: chain(upto="prior"), skip={"forward-backward": _NO_LOGITS}
        ),
        "tpdrseg.prompt_generator": Override(
            model=lambda ctx: chain(upto="injector"), skip={"forward-backward": _NO_LOGITS}
        ),
        "tpdrseg.mask_decoder": Override(
            params=decoder_params(), model=lambda ctx: chain(upto="prompts")
        ),
        "tpdrseg.fundus_lesions": Override(
            params={"root": IDRID_ROOT, "image_size": 32, "val_fraction": 0.34}
        ),
        "tpdrseg.skimage_fundus": Override(params={"image_size": 32, "tiles": 2}),
    },
)

__all__ = ["asklepios_conformance", "clip_checkpoint"]
