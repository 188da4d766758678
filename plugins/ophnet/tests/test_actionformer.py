"""ActionFormer: shapes, padding invariance, local attention, assignment, losses, NMS, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asklepios_ophnet.actionformer import ActionFormer
from asklepios_ophnet.actionformer_blocks import local_attention
from asklepios_ophnet.actionformer_loss import ActionFormerLoss, assign_points, diou_loss_1d
from asklepios_ophnet.actionformer_nms import hard_nms, segment_iou, segment_voting, soft_nms
from asklepios_ophnet.params import ActionFormerLossParams, ActionFormerParams
from asklepios_sdk import BuildContext, ComponentError, DataFacts
from asklepios_sdk.sequences import SequenceCollate
from ophnet_files import fit_steps
from test_examples import EXAMPLES, _cli, _summary

FACTS = DataFacts(
    num_classes=4,
    num_features=6,
    extras={"ophnet.segment_classes": 3, "ophnet.background_class": 3},
)
CTX = BuildContext(data=FACTS)
TINY = {"embd_dim": 16, "head_dim": 16, "mha_win_size": 5}


def _model(**overrides) -> ActionFormer:
    return ActionFormer(ActionFormerParams(**{**TINY, **overrides}), CTX)


def _batch(lengths, segments=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for index, length in enumerate(lengths):
        segs = segments[index] if segments else [[0.0, max(length / 2, 0.5)]]
        samples.append(
            {
                "features": torch.randn(length, 6, generator=gen),
                "segments": torch.tensor(segs, dtype=torch.float32).reshape(-1, 2),
                "segment_labels": torch.arange(len(segs)) % 3,
                "index": index,
            }
        )
    return SequenceCollate()(samples)


@pytest.mark.parametrize("lengths", [[1], [7, 1], [37, 20, 3], [2304, 2303]])
def test_outputs_cover_every_level_point_of_awkward_lengths(lengths):
    model = _model().eval()
    batch = _batch(lengths)
    with torch.no_grad():
        out = model(batch)
    longest = max(lengths)
    sizes = [math.ceil(longest / 2**level) for level in range(6)]
    points = sum(sizes)
    assert out["logits"].shape == (len(lengths), points, 3)
    assert out["offsets"].shape == (len(lengths), points, 2)
    assert out["points"].shape == (len(lengths), points, 4)
    assert out["features"].shape == (len(lengths), longest, 16)
    level_of = np.repeat(np.arange(6), sizes)
    expected = np.concatenate([np.arange(size) * 2**level for level, size in enumerate(sizes)])
    assert np.array_equal(out["points"][0, :, 0].numpy(), expected)
    assert np.array_equal(out["points"][0, :, 3].numpy(), 2.0**level_of)
    for i, length in enumerate(lengths):  # a point is real where its step is a real step
        real = np.concatenate([np.arange(s) * 2**lv < length for lv, s in enumerate(sizes)])
        assert np.array_equal(out["point_mask"][i].numpy(), real)
        assert bool((out["logits"][i][~out["point_mask"][i]] == 0).all())
    assert bool((out["offsets"] >= 0).all())
    assert out["segments"].shape[:2] == out["scores"].shape == out["labels"].shape
    real_segments = out["segments"][out["segment_mask"]]
    assert bool((real_segments[:, 1] >= real_segments[:, 0]).all())  # clipping may empty one
    for i, length in enumerate(lengths):
        mine = out["segments"][i][out["segment_mask"][i]]
        assert bool((mine >= 0).all() and (mine <= length).all())
        assert int(out["segment_mask"][i].sum()) <= 200


@pytest.mark.parametrize("window", [5, 1])
@torch.no_grad()
def test_an_item_gives_the_same_outputs_alone_and_padded(window):
    model = _model(mha_win_size=window).eval()
    for module in model.modules():  # give the LayerNorms biases the padding would expose
        if isinstance(module, torch.nn.LayerNorm):
            module.bias.normal_()
    batch = _batch([23, 64, 9], seed=3)
    together = model(batch)
    for i, length in enumerate(batch["lengths"].tolist()):
        alone = model(SequenceCollate()([{"features": batch["features"][i, :length], "index": 0}]))
        real = together["point_mask"][i]
        count = int(real.sum())
        assert count == alone["logits"].shape[1]
        for key in ("logits", "offsets"):
            assert torch.allclose(together[key][i][real], alone[key][0], atol=1e-5), key
        kept = together["segment_mask"][i]
        assert torch.allclose(together["segments"][i][kept], alone["segments"][0], atol=1e-4)
        assert torch.allclose(together["scores"][i][kept], alone["scores"][0], atol=1e-5)


def _banded_attention(q, k, v, mask, window):
    steps = q.shape[2]
    att = q @ k.transpose(-1, -2)
    distance = (torch.arange(steps)[:, None] - torch.arange(steps)[None]).abs()
    allowed = mask[:, None, None, :] & ((distance <= window // 2) | (window <= 1))
    att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
    att = torch.nan_to_num(att) * mask[:, None, :, None]
    return att @ v


@pytest.mark.parametrize(("steps", "window"), [(1, 5), (7, 5), (30, 19), (30, 9), (12, 1)])
def test_local_attention_is_full_attention_restricted_to_a_band(steps, window):
    gen = torch.Generator().manual_seed(steps)
    q, k, v = (torch.randn(2, 3, steps, 4, generator=gen, dtype=torch.float64) for _ in "qkv")
    mask = torch.ones(2, steps, dtype=torch.bool)
    mask[1, max(1, steps - 4) :] = False
    got = local_attention(q, k, v, mask, window)
    assert torch.allclose(got, _banded_attention(q, k, v, mask, window), atol=1e-12)


def _numpy_assignment(points, segments, labels, classes, radius):
    cls = np.zeros((len(points), classes))
    reg = np.zeros((len(points), 2))
    for p, (t, low, high, stride) in enumerate(points):
        best = []
        for (s, e), label in zip(segments, labels, strict=True):
            c = (s + e) / 2
            lo, hi = max(c - radius * stride, s), min(c + radius * stride, e)
            if t - lo > 0 and hi - t > 0 and low <= max(t - s, e - t) <= high:
                best.append((e - s, label, (t - s) / stride, (e - t) / stride))
        if best:
            shortest = min(b[0] for b in best)
            for length, label, *_ in best:
                if length <= shortest + 1e-3:
                    cls[p, label] = 1
            first = next(b for b in best if b[0] == shortest)
            reg[p] = first[2:]
    return cls, reg


def test_assignment_equals_a_numpy_transcription():
    points = _model().points([40, 20, 10, 5, 3, 2], torch.device("cpu"))
    segments = [[2.0, 5.0], [3.5, 30.0], [10.0, 13.0], [10.0, 13.0], [0.5, 39.5], [20.2, 27.9]]
    labels = [0, 1, 2, 1, 0, 2]  # two classes on one action: both targets
    seg = torch.tensor([segments, [[4.0, 9.0]] + [[0.0, 0.0]] * 5])
    lab = torch.tensor([labels, [2] + [-100] * 5])
    seg_mask = torch.tensor([[True] * 6, [True] + [False] * 5])
    cls, reg = assign_points(points, seg, lab, seg_mask, 3, 1.5)
    for b in range(2):
        real = seg_mask[b].numpy()
        want_cls, want_reg = _numpy_assignment(
            points.numpy(), seg[b].numpy()[real], lab[b].numpy()[real], 3, 1.5
        )
        assert np.array_equal(cls[b].numpy(), want_cls)
        assert np.allclose(reg[b].numpy(), want_reg, atol=1e-6)
    assert int((cls[0].sum(-1) > 0).sum()) > 10
    assert bool((cls[0][:, [1, 2]].sum(-1) == 2).any())  # the tied action is both classes
    cls_none, _ = assign_points(points, seg[:, :0], lab[:, :0], seg_mask[:, :0], 3, 1.5)
    assert cls_none.shape == (2, len(points), 3) and not bool(cls_none.any())


def test_diou_loss_equals_numpy():
    rng = np.random.default_rng(0)
    pred, target = rng.uniform(0, 5, (50, 2)), rng.uniform(0.1, 5, (50, 2))
    pred[0] = target[0]
    lp, rp, lg, rg = pred[:, 0], pred[:, 1], target[:, 0], target[:, 1]
    inter = np.minimum(lp, lg) + np.minimum(rp, rg)
    iou = inter / (lp + rp + lg + rg - inter)
    # centres t + (r - l) / 2, enclosing length max(l) + max(r)
    rho = (rp - lp) / 2 - (rg - lg) / 2
    want = 1 - iou + (rho / (np.maximum(lp, lg) + np.maximum(rp, rg))) ** 2
    got = diou_loss_1d(torch.tensor(pred), torch.tensor(target)).numpy()
    assert np.allclose(got, want, atol=1e-6)
    assert got[0] == pytest.approx(0.0, abs=1e-6)


def _numpy_soft_nms(segs, scores, labels, sigma, min_score, max_num):
    out = []
    for label in np.unique(labels):
        idx = list(np.flatnonzero(labels == label))
        score = {i: scores[i] for i in idx}
        picks = 0
        while idx and picks < max_num:
            best = max(idx, key=lambda i: score[i])
            out.append((best, score[best]))
            idx.remove(best)
            picks += 1
            for i in list(idx):
                a, b = segs[best], segs[i]
                inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
                iou = inter / ((a[1] - a[0] + 1e-6) + (b[1] - b[0] + 1e-6) - inter)
                score[i] *= np.exp(-(iou**2) / sigma)
                if score[i] < min_score:
                    idx.remove(i)
    return out


@pytest.mark.parametrize("max_num", [200, 3])
def test_soft_nms_equals_a_numpy_transcription(max_num):
    rng = np.random.default_rng(1)
    starts = rng.uniform(0, 50, 60)
    segs = np.stack([starts, starts + rng.uniform(1, 15, 60)], 1)
    scores, labels = rng.uniform(0, 1, 60), rng.integers(0, 3, 60)
    kept, kept_scores = soft_nms(
        torch.tensor(segs), torch.tensor(scores), torch.tensor(labels), 0.5, 0.05, max_num
    )
    want = _numpy_soft_nms(segs, scores, labels, 0.5, 0.05, max_num)
    assert kept.tolist() == [i for i, _ in want]
    assert np.allclose(kept_scores.numpy(), [s for _, s in want], atol=1e-12)
    assert len(want) < 60  # some were decayed below min_score


def test_plain_nms_keeps_no_overlapping_pair_of_one_class():
    rng = np.random.default_rng(2)
    starts = torch.tensor(rng.uniform(0, 50, 80))
    segs = torch.stack([starts, starts + torch.tensor(rng.uniform(1, 15, 80))], 1)
    scores, labels = torch.tensor(rng.uniform(0, 1, 80)), torch.tensor(rng.integers(0, 2, 80))
    keep = hard_nms(segs, scores, labels, 0.3, 0.1, 200)
    assert bool((scores[keep] > 0.1).all())
    iou = segment_iou(segs[keep][:, None], segs[keep][None])
    same = labels[keep][:, None] == labels[keep][None]
    assert not bool(((iou > 0.3) & same & ~torch.eye(len(keep), dtype=torch.bool)).any())
    # every dropped segment above min_score overlaps a kept, better-scored one of its class
    dropped = sorted(set(torch.nonzero(scores > 0.1).flatten().tolist()) - set(keep.tolist()))
    for i in dropped:
        mine = keep[(labels[keep] == labels[i]) & (scores[keep] >= scores[i])]
        assert bool((segment_iou(segs[i][None], segs[mine]) > 0.3).any())
    assert len(hard_nms(segs, scores, labels, 0.3, 0.1, 2)) <= 4  # two per class


def test_voting_averages_overlapping_candidates_by_score_and_iou():
    candidates = torch.tensor([[0.0, 10.0], [1.0, 11.0], [30.0, 40.0]])
    scores = torch.tensor([0.9, 0.3, 0.8])
    voted = segment_voting(candidates[[0]], candidates, scores, 0.5)
    w = np.array([0.9 * 1.0, 0.3 * 9 / 11])
    assert np.allclose(voted.numpy(), (w @ candidates[:2].numpy()) / w.sum())


def _every_level_batch():
    """A 160-step item with actions sized for every regression range (and their centres)."""
    segments = [[3.0, 5.0], [20.0, 28.0], [40.0, 54.0], [60.0, 100.0], [10.0, 150.0]]
    return _batch([160, 90], segments=[segments, segments[:3]], seed=5)


def test_gradients_reach_every_trainable_parameter():
    torch.manual_seed(0)
    model = _model(drop_path=0.0)
    loss = ActionFormerLoss(ActionFormerLossParams(), CTX)
    batch = _every_level_batch()
    result = loss(model(batch), batch)
    result.total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing
    assert float(result.terms["reg"]) > 0 and float(result.terms["cls"]) > 0


def test_the_normaliser_moves_only_on_training_steps_and_is_checked():
    model, loss = _model(), ActionFormerLoss(ActionFormerLossParams(init_loss_norm=100), CTX)
    batch = _every_level_batch()
    out = model(batch)
    with torch.no_grad():
        loss(out, batch)
    assert float(loss.loss_normalizer) == 100.0
    positives = assign_points(
        out["points"][0], batch["segments"], batch["segment_labels"], batch["segment_mask"], 3, 1.5
    )[0]
    count = int(((positives.sum(-1) > 0) & out["point_mask"]).sum())
    loss(out, batch)
    assert float(loss.loss_normalizer) == pytest.approx(0.9 * 100 + 0.1 * count)
    batch["segment_labels"][0, 0] = 3  # the background class is not an action class
    with pytest.raises(ComponentError, match="num_classes"):
        loss(out, batch)


def test_actionformer_learns_a_toy_sequence():
    """Two planted actions per item: a few dozen steps localise them (mAP-free check)."""
    torch.manual_seed(0)
    samples = []
    for index, (length, a, b) in enumerate([(48, 6, 30), (40, 20, 4), (56, 35, 10), (44, 12, 28)]):
        features = 0.3 * torch.randn(length, 6)
        features[a : a + 8, 0] += 2.0
        features[b : b + 5, 1] += 2.0
        samples.append(
            {
                "features": features,
                "segments": torch.tensor([[a, a + 8.0], [b, b + 5.0]]),
                "segment_labels": torch.tensor([0, 1]),
                "index": index,
            }
        )
    batch = SequenceCollate()(samples)
    model = _model(drop_path=0.0, embd_dim=32, head_dim=32)
    loss = ActionFormerLoss(ActionFormerLossParams(init_loss_norm=10), CTX)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first, last = fit_steps(model, loss, optimizer, batch)
    assert last < first / 3
    model.eval()
    with torch.no_grad():
        out = model(batch)
    for i, sample in enumerate(samples):  # the best segment of each class hits its action
        for label in (0, 1):
            mine = (out["labels"][i] == label) & out["segment_mask"][i]
            best = out["segments"][i][mine][out["scores"][i][mine].argmax()]
            assert float(segment_iou(best, sample["segments"][label])) > 0.5


@pytest.mark.slow
def test_synthetic_actionformer_config_learns_to_localise(tmp_path):
    """The figure the README reports: test average mAP after the configured 20 epochs."""
    sets = ["train.device=cpu", f"output_dir={tmp_path / 'runs'}"]
    done = _cli("run", str(EXAMPLES / "synthetic_actionformer.yaml"), sets=sets)
    assert done.returncode == 0, done.stderr[-3000:]
    test = _summary(tmp_path / "runs")["test"]
    print(f"synthetic ActionFormer test: average mAP {test['tal_map/average']:.2f}")
    assert test["tal_map/average"] >= 60.0  # a random detector scores a few points
