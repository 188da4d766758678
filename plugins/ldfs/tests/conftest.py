"""Switch on the SDK conformance kit for every ldfs component, on toy-CLIP-space facts."""

from __future__ import annotations

import tempfile
from pathlib import Path

from _stub import StubClip
from asklepios_ldfs.datasets import ToyClipSpace
from asklepios_ldfs.heads import FeatureBackbone
from asklepios_ldfs.params import FeatureBackboneParams, ToyClipSpaceParams
from asklepios_ldfs.synthesizer import SynthesisNet, save_synthesizer, text_tables
from asklepios_sdk import BuildContext
from asklepios_sdk.testing import Conformance, Override

TOY_FACTS = ToyClipSpace(ToyClipSpaceParams(samples_per_class=4, eval_per_class=2)).facts()


def _synthesizer_file() -> str:
    """Write an (untrained, non-identity) synthesiser for ldfs.feature_synthesis to load."""
    source, target, names = text_tables(BuildContext(data=TOY_FACTS), ["source"], None)
    net = SynthesisNet(source, target, zero_init_last=False, domains=names)
    return str(save_synthesizer(net, Path(tempfile.mkdtemp()) / "synthesizer.safetensors"))


def _features(ctx):
    return FeatureBackbone(FeatureBackboneParams(), ctx)


asklepios_conformance = Conformance(
    "asklepios_ldfs.hooks",
    data=TOY_FACTS,
    overrides={
        "ldfs.synthesizer": Override(
            model=_features,
            skip={
                "forward-backward": "its 'logits' are the frozen backbone's zero-shot logits; the "
                "trainable output is 'synthetic', whose gradients test_components.py checks"
            },
        ),
        "ldfs.linear_probe": Override(model=_features),
        "ldfs.clip_adapter": Override(model=_features),
        "ldfs.coop": Override(model=lambda ctx: StubClip(64), params={"n_ctx": 4}),
        "ldfs.feature_synthesis": Override(params={"synthesizer_file": _synthesizer_file()}),
        "ldfs.toy_clip_space": Override(params={"samples_per_class": 4, "eval_per_class": 2}),
    },
)
