"""Segmentation: LCC + hole filling and Dice/Jaccard (§10.6), empty masks, the UperNet model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny import TINY
from asklepios_panderm.params import PanDermUperNetParams, SegMetricsParams
from asklepios_panderm.segmetrics import SegMetrics, dice_jaccard, largest_component_filled
from asklepios_panderm.upernet import PanDermUperNet
from asklepios_sdk import BuildContext, DataFacts


def _two_blobs() -> tuple[np.ndarray, np.ndarray]:
    """A 32x32 prediction with blobs of 30 and 10 pixels; the larger has a 2-pixel hole.

    Returns the prediction and the expected post-processed mask (the large blob, filled).
    """
    pred = np.zeros((32, 32), dtype=bool)
    pred[4:8, 4:12] = True  # 4 x 8 = 32 pixels ...
    pred[5, 6] = pred[6, 6] = False  # ... less a 2-pixel hole inside: area 30
    pred[20:22, 20:25] = True  # 2 x 5 = 10 pixels, far away
    filled = np.zeros_like(pred)
    filled[4:8, 4:12] = True
    return pred, filled


def test_lcc_keeps_the_large_blob_with_its_hole_filled() -> None:
    pred, filled = _two_blobs()
    assert pred[4:8, 4:12].sum() == 30 and pred[20:22, 20:25].sum() == 10
    out = largest_component_filled(pred)
    assert np.array_equal(out, filled)


def test_lcc_matches_the_repos_skimage_implementation() -> None:
    measure = pytest.importorskip("skimage.measure")
    from scipy import ndimage

    def repo(bw: np.ndarray) -> np.ndarray:  # PanDerm's largestConnectComponent, transcribed
        labelled, num = measure.label(bw, background=0, return_num=True)
        max_label, max_num = 0, 0
        for i in range(1, num + 1):
            if np.sum(labelled == i) > max_num:
                max_num, max_label = np.sum(labelled == i), i
        return ndimage.binary_fill_holes(labelled == max_label).astype(int)

    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = ndimage.binary_opening(rng.random((24, 24)) > 0.55)
        if mask.any():
            assert np.array_equal(largest_component_filled(mask), repo(mask).astype(bool))
    diagonal = np.eye(6, dtype=bool)  # 8-connected: one component
    assert largest_component_filled(diagonal).sum() == 6
    empty = np.zeros((5, 5), dtype=bool)
    assert np.array_equal(largest_component_filled(empty, faithful_empty=True), repo(empty) > 0)
    assert not largest_component_filled(empty).any()


def test_dice_and_jaccard_follow_the_closed_forms() -> None:
    _, filled = _two_blobs()
    truth = np.zeros((32, 32), dtype=bool)
    truth[6:12, 5:10] = True
    inter = np.count_nonzero(filled & truth)
    a, b = int(filled.sum()), int(truth.sum())
    dice, jaccard = dice_jaccard(filled, truth)  # type: ignore[misc]
    assert dice == pytest.approx(2 * inter / (a + b))
    assert jaccard == pytest.approx(inter / np.count_nonzero(filled | truth))
    assert dice_jaccard(np.zeros((3, 3)), np.zeros((3, 3))) is None


def _logits(pred: np.ndarray) -> torch.Tensor:
    fg = torch.as_tensor(pred, dtype=torch.float32)
    return torch.stack([1 - fg, fg])[None]


def test_evaluator_averages_post_processed_scores_per_image() -> None:
    pred, filled = _two_blobs()
    truth = np.zeros((32, 32), dtype=np.int64)
    truth[6:12, 5:10] = 1
    metric = SegMetrics(SegMetricsParams(), BuildContext())
    metric.update({"logits": _logits(pred)}, {"mask": torch.as_tensor(truth)[None]})
    metric.update({"logits": _logits(np.zeros((32, 32)))}, {"mask": torch.zeros(1, 32, 32)})
    dice, jaccard = dice_jaccard(filled, truth.astype(bool))  # type: ignore[misc]
    result = metric.compute()
    assert float(result["dice"]) == pytest.approx((dice + 1.0) / 2)  # both-empty scores 1
    assert float(result["jaccard"]) == pytest.approx((jaccard + 1.0) / 2)
    excluded = SegMetrics(SegMetricsParams(empty="exclude"), BuildContext())
    excluded.update({"logits": _logits(np.zeros((32, 32)))}, {"mask": torch.zeros(1, 32, 32)})
    excluded.update({"logits": _logits(pred)}, {"mask": torch.as_tensor(truth)[None]})
    assert float(excluded.compute()["dice"]) == pytest.approx(dice)


def test_faithful_quirks_reproduce_the_repo() -> None:
    empty = np.zeros((8, 8))
    gt_quirk = SegMetrics(SegMetricsParams(faithful_empty_gt=True), BuildContext())
    gt_quirk.update({"logits": _logits(empty)}, {"mask": torch.zeros(1, 8, 8)})
    assert float(gt_quirk.compute()["dice"]) == 0.0  # centre pixel set, prediction empty
    both = SegMetrics(
        SegMetricsParams(faithful_empty_gt=True, faithful_empty_prediction=True), BuildContext()
    )
    both.update({"logits": _logits(empty)}, {"mask": torch.zeros(1, 8, 8)})
    assert float(both.compute()["dice"]) == pytest.approx(2 * 1 / (64 + 1))


@pytest.mark.parametrize("impl", ["timm", "native"])
def test_upernet_segments_at_the_input_size(impl: str) -> None:
    params = PanDermUperNetParams(
        **{**TINY, "img_size": 64, "depth": 4}, out_indices=[0, 1, 2, 3], channels=16, impl=impl
    )
    ctx = BuildContext(data=DataFacts(task="segmentation", num_classes=2))
    torch.manual_seed(0)
    model = PanDermUperNet(params, ctx)
    batch = model.example_batch(ctx, 2)
    out = model(batch)
    assert out["logits"].shape == (2, 2, 64, 64)
    levels = model.encoder.intermediates(batch["image"], [0, 1, 2, 3])
    sizes = [
        op(x).shape[-1]
        for op, x in zip((model.fpn1, model.fpn2, model.fpn3, model.fpn4), levels, strict=True)
    ]
    assert sizes == [16, 8, 4, 2]  # x4, x2, x1, x0.5 of the 4x4 patch grid
    out["logits"].sum().backward()
    assert model.encoder.blocks[0].norm1.weight.grad is not None
    assert model.layer_id("decode_head.conv_seg.weight") == 5
    with pytest.raises(Exception, match="out_indices"):
        PanDermUperNet(params.model_copy(update={"out_indices": [0, 1, 2, 9]}), ctx)
