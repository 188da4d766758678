"""Spec check 6: the evaluator on scikit-image's real microaneurysm crop, and its references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from asklepios_sdk import BuildContext, DataFacts
from asklepios_tpdrseg.metrics import LesionMetrics, binned_average_precision
from asklepios_tpdrseg.params import LesionMetricsParams
from asklepios_tpdrseg.preprocess import pseudo_lesion_mask

CTX = BuildContext(
    data=DataFacts(task="segmentation", extras={"lesions": ("MA", "HE", "EX", "SE")})
)


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    from skimage import data

    image = data.microaneurysms()
    assert image.shape == (102, 102)
    mask = torch.from_numpy(pseudo_lesion_mask(image, "dark", radius=5))
    assert 0 < float(mask.float().mean()) < 0.5
    return mask[None, None]


def _logits(probability: torch.Tensor) -> torch.Tensor:
    p = probability.double().clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


def _evaluate(prob: torch.Tensor, mask: torch.Tensor, **params) -> dict[str, float]:
    metric = LesionMetrics(LesionMetricsParams(**params), CTX)
    metric.update({"logits": _logits(prob)}, {"mask": mask, "lesion": torch.zeros(len(mask))})
    return metric.compute()


@pytest.mark.parametrize("bins", [1001, None])
def test_perfect_and_empty_predictions_on_the_real_crop(crop, bins) -> None:
    perfect = _evaluate(crop.float(), crop, aupr_bins=bins)
    for key in ("dice_dataset", "iou_dataset", "dice_per_image", "iou_per_image", "aupr_dataset"):
        assert perfect[f"MA/{key}"] == pytest.approx(1.0)
    nothing = _evaluate(torch.zeros_like(crop, dtype=torch.float), crop, aupr_bins=bins)
    assert nothing["MA/dice_dataset"] == 0 and nothing["MA/iou_dataset"] == 0
    assert nothing["MA/dice_per_image"] == 0 and nothing["MA/iou_per_image"] == 0


def test_random_scores_give_an_aupr_near_the_prevalence(crop) -> None:
    gen = torch.Generator().manual_seed(0)
    prevalence = float(crop.float().mean())
    for bins in (1001, None):
        result = _evaluate(torch.rand(crop.shape, generator=gen), crop, aupr_bins=bins)
        assert abs(result["MA/aupr_dataset"] - prevalence) < 0.05


def test_iou_and_dice_agree_on_a_noisy_prediction(crop) -> None:
    gen = torch.Generator().manual_seed(1)
    noisy = crop.float() * 0.7 + 0.6 * torch.rand(crop.shape, generator=gen)
    result = _evaluate(noisy, crop)
    dice, iou = result["MA/dice_dataset"], result["MA/iou_dataset"]
    assert 0 < dice < 1 and iou == pytest.approx(dice / (2 - dice))
    pred, true = (noisy >= 0.5).numpy().ravel(), crop.numpy().ravel().astype(bool)
    tp, fp, fn = (pred & true).sum(), (pred & ~true).sum(), (~pred & true).sum()
    assert dice == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_empty_ground_truth_follows_the_convention() -> None:
    empty = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    quiet = torch.zeros(2, 1, 8, 8)
    noisy = quiet.clone()
    noisy[1, 0, 0, 0] = 1.0
    one = _evaluate(quiet, empty, empty_gt="one")
    assert one["MA/dice_dataset"] == 1 and one["MA/dice_per_image"] == 1
    assert math.isnan(one["MA/aupr_dataset"])
    wrong = _evaluate(noisy, empty, empty_gt="one")
    assert wrong["MA/dice_dataset"] == 0 and wrong["MA/dice_per_image"] == 0.5
    excluded = _evaluate(noisy, empty, empty_gt="exclude")
    assert math.isnan(excluded["MA/dice_dataset"]) and math.isnan(excluded["MA/dice_per_image"])
    mixed = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    mixed[0, 0, :2, :2] = 1
    result = _evaluate(mixed.float(), mixed, empty_gt="exclude")
    assert result["MA/dice_per_image"] == 1.0  # the empty image is left out, not counted as 0


def test_per_lesion_keys_means_and_the_lesion_index() -> None:
    metric = LesionMetrics(LesionMetricsParams(lesions=["MA", "EX"]), CTX)
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    mask[:, 0, 0, 0] = 1
    prob = mask.float()
    prob[1, 0, 3, 3] = 1.0  # one false positive on the EX image
    metric.update({"logits": _logits(prob)}, {"mask": mask, "lesion": torch.tensor([0, 2])})
    result = metric.compute()
    assert result["MA/dice_dataset"] == 1.0 and result["EX/dice_dataset"] == pytest.approx(2 / 3)
    assert result["mean/dice_dataset"] == pytest.approx((1 + 2 / 3) / 2)
    assert not any(k.startswith(("HE/", "SE/")) for k in result)


def test_binned_ap_equals_torchmetrics_and_exact_ap_equals_sklearn() -> None:
    from sklearn.metrics import average_precision_score
    from torchmetrics.classification import BinaryAveragePrecision

    gen = torch.Generator().manual_seed(3)
    target = torch.rand(4, 1, 16, 16, generator=gen) > 0.8
    prob = (0.5 * target.float() + 0.7 * torch.rand(4, 1, 16, 16, generator=gen)).clamp(0, 1)
    for bins in (11, 101):
        reference = BinaryAveragePrecision(thresholds=bins)(prob.flatten(), target.flatten().long())
        ours = _evaluate(prob, target.to(torch.uint8), aupr_bins=bins)["MA/aupr_dataset"]
        assert ours == pytest.approx(float(reference), abs=1e-6)
    exact = _evaluate(prob, target.to(torch.uint8), aupr_bins=None)["MA/aupr_dataset"]
    expected = average_precision_score(target.flatten().numpy(), prob.double().flatten().numpy())
    assert exact == pytest.approx(expected, abs=1e-6)
    assert math.isnan(float(binned_average_precision(torch.zeros(5), torch.ones(5))))


def test_overlays_are_written_for_a_few_images(tmp_path, crop) -> None:
    ctx = CTX.replace(output_dir=str(tmp_path), stage="main")
    metric = LesionMetrics(LesionMetricsParams(overlays=2), ctx)
    image = torch.randn(3, 3, 102, 102)
    mask = crop.expand(3, -1, -1, -1)
    batch = {"mask": mask, "lesion": torch.zeros(3), "image": image}
    metric.update({"logits": _logits(mask.float() * 0.8)}, batch)
    metric.compute()
    png = tmp_path / "overlays" / "main" / "eval-0000.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    metric.reset()
    metric.update({"logits": _logits(mask.float() * 0.8)}, batch)
    metric.compute()
    assert (tmp_path / "overlays" / "main" / "eval-0001.png").is_file()
    silent = LesionMetrics(LesionMetricsParams(overlays=2), CTX)
    silent.update({"logits": _logits(mask.float())}, batch)
    silent.compute()
    assert not list(tmp_path.glob("**/*.tmp*"))


def test_dataset_pixel_counts_sum_over_images_while_per_image_averages() -> None:
    mask = torch.zeros(2, 1, 10, 10, dtype=torch.uint8)
    mask[0, 0, :5] = 1  # 50 lesion pixels, all found
    mask[1, 0, 0, 0] = 1  # 1 lesion pixel, missed
    prob = mask.float()
    prob[1] = 0
    result = _evaluate(prob, mask)
    assert result["MA/dice_dataset"] == pytest.approx(2 * 50 / (2 * 50 + 1))
    assert result["MA/dice_per_image"] == pytest.approx(0.5)
    assert np.isfinite(result["mean/aupr_dataset"])
