"""``synfer.soft_ce``: soft targets where a sample has one, hard labels elsewhere (numpy check)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _tiny import classifier_ref, save_classifier, write_generated
from asklepios_sdk import BuildContext, ComponentError
from asklepios_sdk.testing import host_components
from asklepios_synfer.losses import SoftCrossEntropy
from asklepios_synfer.params import SoftCrossEntropyParams, SyntheticFERParams
from asklepios_synfer.synthetic import SyntheticFER

REAL = {"type": "core.digits", "image_size": 16, "channels": 1, "val_per_class": 2}


def _loss() -> SoftCrossEntropy:
    return SoftCrossEntropy(SoftCrossEntropyParams(), BuildContext())


def _numpy_soft_ce(logits, label, soft) -> float:
    """The loss written out with numpy: q = soft row if it sums to > 0, else one-hot(label)."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    total = 0.0
    for i in range(len(label)):
        q = np.zeros(logits.shape[1])
        if soft is not None and soft[i].sum() > 0:
            q = soft[i]
        else:
            q[label[i]] = 1.0
        total += -(q * log_p[i]).sum()
    return total / len(label)


def test_it_matches_a_numpy_transcription_on_a_mixed_batch() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    label = torch.tensor([0, 4, 2, 2, 1, 3])
    soft = torch.rand(6, 5, generator=gen).softmax(dim=1)
    soft[[0, 3]] = 0  # no soft label: the hard label counts
    value = _loss()({"logits": logits}, {"label": label, "soft_label": soft}).total
    expected = _numpy_soft_ce(logits.numpy(), label.numpy(), soft.double().numpy())
    assert float(value) == pytest.approx(expected, abs=1e-6)
    hard = F.cross_entropy(logits.float(), label)
    assert float(value) != pytest.approx(float(hard), abs=1e-3)  # p̄ is used, not y₀


def test_one_hot_or_absent_soft_labels_give_plain_cross_entropy_and_its_gradient() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 3, generator=gen).requires_grad_(True)
    label = torch.tensor([2, 0, 1, 1])
    plain = F.cross_entropy(logits, label)
    for batch in ({"label": label}, {"label": label, "soft_label": F.one_hot(label, 3).float()}):
        assert torch.allclose(_loss()({"logits": logits}, batch).total, plain, atol=1e-6)
    soft = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.8, 0.1], [0.0, 0.0, 0.0]])
    (grad,) = torch.autograd.grad(
        _loss()({"logits": logits}, {"label": label, "soft_label": soft}).total, logits
    )
    target = torch.where(soft.sum(1, keepdim=True) > 0, soft, F.one_hot(label, 3).float())
    assert torch.allclose(grad, (logits.softmax(dim=1) - target) / 4, atol=1e-6)


def test_mixed_batches_combine_both_targets_with_lam() -> None:
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    soft = torch.tensor([[0.25] * 4, [0.0] * 4, [0.1, 0.2, 0.3, 0.4]])
    label, label_b = torch.tensor([0, 1, 2]), torch.tensor([3, 3, 0])
    out = _loss()(
        {"logits": logits},
        {"label": label, "soft_label": soft, "label_b": label_b, "lam": torch.tensor(0.7)},
    ).total
    a = _numpy_soft_ce(logits.double().numpy(), label.numpy(), soft.double().numpy())
    b = _numpy_soft_ce(logits.double().numpy(), label_b.numpy(), None)
    assert float(out) == pytest.approx(0.7 * a + 0.3 * b, abs=1e-6)


def test_a_soft_label_of_another_width_is_refused() -> None:
    with pytest.raises(ComponentError, match=r"synfer\.soft_ce.*num_classes"):
        _loss()(
            {"logits": torch.zeros(2, 4)},
            {"label": torch.tensor([0, 1]), "soft_label": torch.ones(2, 3)},
        )


def test_it_trains_synthetic_fer_soft_samples_on_p_bar_in_batches_mixed_with_real(
    tmp_path,
) -> None:
    folder = write_generated(tmp_path / "gen", count=12, classes=10)
    members = [save_classifier(tmp_path / f"m{i}.pt", num_classes=10, seed=i) for i in range(2)]
    calibrator = {
        "models": [classifier_ref(m, 10) for m in members],
        "tau_conf": 1.0,  # never relabel: every disagreement is undecided, kept soft
        "soft": True,
    }
    params = SyntheticFERParams(path=str(folder), real=REAL, mix_real=True, calibrator=calibrator)
    data = SyntheticFER(params, BuildContext(components=host_components))
    train = data.split("train")
    loader = torch.utils.data.DataLoader(train, batch_size=len(train), shuffle=False)
    batch = next(iter(loader))  # 12 synthetic then the real digits: one collated batch
    synthetic = batch["synthetic"]
    assert synthetic[:12].all() and not synthetic[12:].any()
    soft = batch["soft_label"]
    assert torch.equal(soft[12:], F.one_hot(batch["label"][12:], 10).float())  # real: one-hot
    undecided = (soft.max(dim=1).values < 1)[:12]
    assert undecided.any()  # the fixture has undecided synthetic images, kept with p̄
    logits = torch.randn(len(train), 10, generator=torch.Generator().manual_seed(3))
    value = _loss()({"logits": logits}, batch).total
    expected = _numpy_soft_ce(
        logits.double().numpy(), batch["label"].numpy(), soft.double().numpy()
    )
    assert float(value) == pytest.approx(expected, abs=1e-5)
    assert float(value) != pytest.approx(float(F.cross_entropy(logits, batch["label"])), abs=1e-4)


def test_synthetic_fer_refuses_soft_labels_of_another_width(tmp_path) -> None:
    folder = write_generated(tmp_path / "gen", count=6, classes=3)
    member = save_classifier(tmp_path / "m.pt", num_classes=3)
    calibrator = {"models": [classifier_ref(member, 3)], "soft": True}
    params = SyntheticFERParams(path=str(folder), real=REAL, calibrator=calibrator)
    with pytest.raises(ComponentError, match="num_classes to 10"):
        SyntheticFER(params, BuildContext(components=host_components))
