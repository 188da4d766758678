"""MS-TCN: shapes, masking, the loss against a numpy transcription, decoding, a toy sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from asklepios_ophnet.mstcn import MSTCN, MSTCNLoss, decode_segments
from asklepios_ophnet.params import MSTCNLossParams, MSTCNParams
from asklepios_sdk import BuildContext, DataFacts
from asklepios_sdk.sequences import IGNORE_INDEX, SequenceCollate, example_sequence_batch
from ophnet_files import fit_steps

FACTS = DataFacts(num_classes=4, num_features=6, extras={"ophnet.background_class": 3})
CTX = BuildContext(data=FACTS)
TINY = MSTCNParams(num_stages=3, num_layers=4, num_f_maps=8)


def test_outputs_have_one_row_per_step_and_stage():
    model = MSTCN(TINY, CTX)
    batch = example_sequence_batch(CTX, batch_size=3)
    out = model(batch)
    assert out["logits"].shape == (3, 11, 4)
    assert out["stage_logits"].shape == (3, 3, 11, 4)
    assert "segments" not in out  # detections are decoded in eval mode only
    padded = ~batch["mask"]
    assert bool((out["stage_logits"][:, padded] == 0).all())  # padded steps are masked out
    model.eval()
    out = model(batch)
    assert out["segments"].shape[:2] == out["scores"].shape == out["labels"].shape
    assert not bool((out["labels"][out["segment_mask"]] == 3).any())  # background yields none


@torch.no_grad()
def test_an_item_is_scored_the_same_alone_and_next_to_a_longer_one():
    model = MSTCN(TINY, CTX).eval()
    batch = example_sequence_batch(CTX, batch_size=3)
    together = model(batch)["logits"]
    collate = SequenceCollate()
    for i, length in enumerate(batch["lengths"].tolist()):
        alone = collate([{"features": batch["features"][i, :length], "index": i}])
        assert torch.allclose(model(alone)["logits"][0], together[i, :length], atol=1e-5)


def test_the_loss_equals_a_numpy_transcription():
    gen = torch.Generator().manual_seed(0)
    stages = torch.randn(2, 2, 7, 4, generator=gen)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    labels = torch.randint(0, 4, (2, 7), generator=gen)
    labels[1, 4:] = IGNORE_INDEX
    labels[0, 2] = IGNORE_INDEX
    out = MSTCNLoss(MSTCNLossParams(), CTX)(
        {"stage_logits": stages}, {"mask": mask, "frame_labels": labels}
    )
    total = 0.0
    for logits in stages.double().numpy():
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        rows = [(b, t) for b in range(2) for t in range(7) if mask[b, t] and labels[b, t] >= 0]
        ce = -np.mean([log_p[b, t, labels[b, t]] for b, t in rows])
        pairs = [(b, t) for b in range(2) for t in range(1, 7) if mask[b, t] and mask[b, t - 1]]
        sq = [np.minimum((log_p[b, t] - log_p[b, t - 1]) ** 2, 16.0) for b, t in pairs]
        total += ce + 0.15 * np.mean(np.concatenate(sq))
    assert float(out.total) == pytest.approx(total, rel=1e-5)
    assert set(out.terms) == {"ce", "smooth"}


def test_the_smoothing_term_sends_no_gradient_to_the_previous_step():
    stages = torch.randn(1, 1, 2, 3, requires_grad=True)
    batch = {"mask": torch.ones(1, 2, dtype=torch.bool), "frame_labels": torch.tensor([[-100, 1]])}
    MSTCNLoss(MSTCNLossParams(), CTX)({"stage_logits": stages}, batch).total.backward()
    assert stages.grad is not None
    assert bool((stages.grad[0, 0, 0] == 0).all())  # unlabelled, and only the detached "previous"
    assert bool((stages.grad[0, 0, 1] != 0).any())


def test_decoding_turns_runs_into_scored_segments():
    probs = torch.tensor(
        [[[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.3, 0.6], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3]]]
    )
    mask = torch.ones(1, 5, dtype=torch.bool)
    segments, scores, labels, segment_mask = decode_segments(probs, mask, background=2)
    assert segment_mask.tolist() == [[True, True]]
    assert segments[0].tolist() == [[0.0, 2.0], [3.0, 5.0]]
    assert labels[0].tolist() == [0, 1]
    assert scores[0].tolist() == pytest.approx([0.85, 0.65])
    none, _, _, empty = decode_segments(probs, torch.zeros(1, 5, dtype=torch.bool))
    assert none.shape == (1, 0, 2) and empty.shape == (1, 0)


def test_mstcn_learns_a_toy_sequence():
    """Phase k shifts feature k; two stages learn to segment it within a few dozen steps."""
    torch.manual_seed(0)
    lengths, samples = [30, 24, 36, 28], []
    for index, length in enumerate(lengths):
        labels = torch.tensor([min(3 * t // length, 2) for t in range(length)])
        features = torch.nn.functional.one_hot(labels, 6).float() * 2 + 0.5 * torch.randn(length, 6)
        samples.append({"features": features, "frame_labels": labels, "index": index})
    batch = SequenceCollate()(samples)
    model = MSTCN(MSTCNParams(num_stages=2, num_layers=4, num_f_maps=16, dropout=0.1), CTX)
    loss = MSTCNLoss(MSTCNLossParams(), CTX)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first, last = fit_steps(model, loss, optimizer, batch)
    model.eval()
    predicted = model(batch)["logits"].argmax(-1)
    accuracy = (predicted == batch["frame_labels"])[batch["mask"]].float().mean()
    assert last < first / 3
    assert float(accuracy) > 0.95
