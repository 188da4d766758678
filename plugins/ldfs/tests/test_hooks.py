"""The ``stage_end`` hook saves the trained synthesiser where ``ldfs.feature_synthesis`` looks."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from asklepios_ldfs import hooks
from asklepios_ldfs.augmentations import synthesizer_path
from asklepios_ldfs.datasets import ToyClipSpace
from asklepios_ldfs.heads import FeatureBackbone
from asklepios_ldfs.params import FeatureBackboneParams, LDFSSynthesizerParams, ToyClipSpaceParams
from asklepios_ldfs.synthesizer import LDFSSynthesizer, load_synthesizer
from asklepios_sdk import BuildContext


def _model():
    data = ToyClipSpace(ToyClipSpaceParams(samples_per_class=2, eval_per_class=1))
    ctx = BuildContext(data=data.facts())
    return LDFSSynthesizer(LDFSSynthesizerParams(zero_init_last=False), ctx).wrap(
        FeatureBackbone(FeatureBackboneParams(), ctx)
    )


def test_stage_end_saves_on_rank_zero_only(tmp_path):
    model = _model()
    run = SimpleNamespace(is_main=True, output_dir=str(tmp_path), model=model)
    hooks.stage_end(run=run, stage="synthesis", summary={})
    loaded = load_synthesizer(synthesizer_path(tmp_path, "synthesis"))
    torch.testing.assert_close(loaded.w2, model.net.w2)
    torch.testing.assert_close(loaded.text_target, model.net.text_target)
    assert loaded.config == model.net.config
    other = tmp_path / "rank1"
    hooks.stage_end(
        run=SimpleNamespace(is_main=False, output_dir=str(other), model=model),
        stage="synthesis",
        summary={},
    )
    assert not other.exists()


def test_stage_end_ignores_models_without_synthesiser(tmp_path):
    run = SimpleNamespace(is_main=True, output_dir=str(tmp_path), model=torch.nn.Linear(2, 2))
    hooks.stage_end(run=run, stage="finetune", summary={})
    assert not (tmp_path / "ldfs").exists()
