"""Built-in backbones, augmentations, evaluator (against scikit-learn) and trainer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from asklepios.builtins import augmentations as aug
from asklepios.builtins import params
from asklepios.builtins.backbones import MLPBackbone, TimmBackbone
from asklepios.builtins.evaluators import ClassificationEvaluator
from asklepios.builtins.params import (
    ClassificationEvaluatorParams,
    MLPBackboneParams,
    TimmBackboneParams,
)
from asklepios_sdk import BuildContext, ComponentError, DataFacts

IMAGES = BuildContext(data=DataFacts(num_classes=4, in_channels=3, image_size=(16, 16)))


def test_timm_backbone_returns_logits_and_pooled_features() -> None:
    model = TimmBackbone(TimmBackboneParams(model_name="resnet10t", in_chans=1), IMAGES)
    out = model({"image": torch.randn(2, 1, 16, 16)})
    assert out["logits"].shape == (2, 4)
    assert out["features"].shape == (2, model.feature_dim)
    head = model.model.get_classifier()
    torch.testing.assert_close(head(out["features"]), out["logits"])
    model.reset_classifier(7)
    assert model({"image": torch.randn(2, 1, 16, 16)})["logits"].shape == (2, 7)


def test_timm_loads_a_local_pretrained_file(tmp_path) -> None:
    source = TimmBackbone(TimmBackboneParams(model_name="resnet10t"), IMAGES)
    path = tmp_path / "weights.pth"
    torch.save(source.model.state_dict(), path)
    loaded = TimmBackbone(
        TimmBackboneParams(model_name="resnet10t", pretrained_file=str(path)), IMAGES
    )
    key = "conv1.0.weight"
    torch.testing.assert_close(loaded.model.state_dict()[key], source.model.state_dict()[key])


def test_unknown_timm_model_suggests_names() -> None:
    with pytest.raises(ComponentError, match="did you mean"):
        TimmBackbone(TimmBackboneParams(model_name="resnet1"), IMAGES)


def test_mlp_infers_width_and_needs_classes() -> None:
    model = MLPBackbone(MLPBackboneParams(hidden=[8, 5]), IMAGES)
    out = model({"image": torch.randn(3, 3, 16, 16)})
    assert out["logits"].shape == (3, 4) and out["features"].shape == (3, 5)
    with pytest.raises(ComponentError, match="num_classes"):
        MLPBackbone(MLPBackboneParams(in_features=4), BuildContext())


def test_augmentations_change_only_the_image_and_pickle() -> None:
    sample = {"image": torch.rand(3, 20, 24), "label": torch.tensor(2)}
    transforms = [
        aug.Resize(params.ResizeParams(size=[16, 18])),
        aug.RandomResizedCrop(params.RandomResizedCropParams(size=12)),
        aug.CenterCrop(params.CenterCropParams(size=10)),
        aug.HorizontalFlip(params.HorizontalFlipParams(p=1.0)),
        aug.VerticalFlip(params.VerticalFlipParams(p=1.0)),
        aug.Rotation(params.RotationParams(degrees=20)),
        aug.ColorJitter(params.ColorJitterParams(brightness=0.3, saturation=0.2)),
        aug.Normalize(params.NormalizeParams()),
    ]
    out = sample
    for transform in transforms:
        out = pickle.loads(pickle.dumps(transform))(out)
        assert out["label"] is sample["label"]
    assert out["image"].shape == (3, 10, 10)
    flipped = aug.HorizontalFlip(params.HorizontalFlipParams(p=1.0))(sample)["image"]
    torch.testing.assert_close(flipped, sample["image"].flip(-1))
    norm = aug.Normalize(params.NormalizeParams(mean=[0.5] * 3, std=[0.25] * 3))(sample)["image"]
    torch.testing.assert_close(norm, (sample["image"] - 0.5) / 0.25)


def test_to_tensor_converts_arrays_and_pil() -> None:
    from PIL import Image

    array = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    out = aug.ToTensor(params.ToTensorParams())({"image": array})["image"]
    assert out.shape == (3, 2, 2) and out.dtype == torch.float32
    assert float(out[2, 1, 1]) == pytest.approx(220 / 255)
    pil = aug.ToTensor(params.ToTensorParams())({"image": Image.fromarray(array)})["image"]
    torch.testing.assert_close(pil, out)


def test_normalize_checks_channels() -> None:
    with pytest.raises(ComponentError, match="1 channels"):
        aug.Normalize(params.NormalizeParams(), BuildContext(data=DataFacts(in_channels=1)))


def test_classification_evaluator_matches_sklearn_and_syncs_as_cat_states() -> None:
    from sklearn.metrics import (
        balanced_accuracy_score,
        confusion_matrix,
        f1_score,
        roc_auc_score,
    )

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, 4))
    labels = rng.integers(0, 4, 60)
    logits[np.arange(60), labels] += 1.0
    evaluator = ClassificationEvaluator(ClassificationEvaluatorParams(), IMAGES)
    for part in np.array_split(np.arange(60), 3):
        evaluator.update(
            {"logits": torch.tensor(logits[part])}, {"label": torch.tensor(labels[part])}
        )
    got = evaluator.compute()
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = logits.argmax(1)
    assert float(got["accuracy"]) == pytest.approx((pred == labels).mean())
    assert float(got["balanced_accuracy"]) == pytest.approx(balanced_accuracy_score(labels, pred))
    assert float(got["macro_f1"]) == pytest.approx(f1_score(labels, pred, average="macro"))
    assert float(got["auroc"]) == pytest.approx(
        roc_auc_score(labels, probs, multi_class="ovr", average="macro"), abs=1e-5
    )
    np.testing.assert_array_equal(
        evaluator.artifacts()["confusion_matrix"].numpy(), confusion_matrix(labels, pred)
    )
    conf = probs.max(1)
    bins = np.minimum((conf * 15).astype(int), 14)
    ece = sum(
        abs(conf[bins == b].mean() - (pred == labels)[bins == b].mean()) * (bins == b).mean()
        for b in range(15)
        if (bins == b).any()
    )
    assert float(got["ece"]) == pytest.approx(ece, abs=1e-5)
    assert evaluator.is_higher_better("balanced_accuracy") and not evaluator.is_higher_better("ece")
    assert evaluator._reductions["probs"].__name__ == "dim_zero_cat"
