"""Per-sample transforms against the repo's torchvision pipelines (§4), and test-time views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny import TINY, tiny_ctx
from asklepios_panderm.params import (
    EvalTransformParams,
    FinetuneTransformParams,
    PanDermTTAParams,
    PanDermViTParams,
    SegTransformParams,
)
from asklepios_panderm.transforms import EvalTransform, FinetuneTransform, SegTransform
from asklepios_panderm.tta import PanDermTTA
from asklepios_panderm.vit import PanDermViT
from PIL import Image
from torchvision import transforms as T

CTX = tiny_ctx()


def _photo(width: int = 300, height: int = 280) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(("std", "first"), [("panderm", 0.228), ("imagenet", 0.229)])
def test_eval_transform_is_the_repos_pipeline(std: str, first: float) -> None:
    reference = T.Compose(
        [
            T.Resize(256),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(mean=(0.485, 0.456, 0.406), std=(first, 0.224, 0.225)),
        ]
    )
    image = _photo()
    ours = EvalTransform(EvalTransformParams(std=std), CTX)({"image": image, "label": 1})
    assert ours["label"] == 1
    torch.testing.assert_close(ours["image"], reference(image))


def test_eval_transform_accepts_tensors_and_arrays() -> None:
    transform = EvalTransform(EvalTransformParams(resize=32, crop=32, normalize=False), CTX)
    array = np.array(_photo(40, 40))
    from_array = transform({"image": array})["image"]
    from_tensor = transform({"image": torch.from_numpy(array).permute(2, 0, 1) / 255.0})["image"]
    assert from_array.shape == (3, 32, 32) and float(from_array.max()) <= 1.0
    torch.testing.assert_close(from_array, from_tensor)
    gray = transform({"image": torch.rand(1, 40, 40)})["image"]
    assert gray.shape == (3, 32, 32)


def test_finetune_transform_matches_the_repo_under_a_seed() -> None:
    reference = T.Compose(
        [
            T.Resize(256),
            T.RandomResizedCrop(224, scale=(0.75, 1.0)),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.RandomRotation(45),
            T.ColorJitter(hue=0.2),
            T.ToTensor(),
            T.Normalize(mean=(0.485, 0.456, 0.406), std=(0.228, 0.224, 0.225)),
        ]
    )
    image = _photo()
    ours = FinetuneTransform(FinetuneTransformParams(), CTX)
    torch.manual_seed(3)
    expected = reference(image)
    torch.manual_seed(3)
    torch.testing.assert_close(ours({"image": image})["image"], expected)
    extra = FinetuneTransform(
        FinetuneTransformParams(auto_augment="rand-m9-mstd0.5-inc1", random_erasing=0.25), CTX
    )
    assert extra({"image": image})["image"].shape == (3, 224, 224)


def test_seg_transform_resizes_jointly_and_binarises_the_mask() -> None:
    image = _photo(50, 40)
    mask = np.zeros((40, 50), dtype=np.uint8)
    mask[10:30, 5:25] = 255
    out = SegTransform(SegTransformParams(size=20), CTX)(
        {"image": image, "mask": Image.fromarray(mask)}
    )
    assert out["image"].shape == (3, 20, 20) and out["mask"].shape == (20, 20)
    assert out["mask"].dtype == torch.int64 and set(out["mask"].unique().tolist()) == {0, 1}
    expected_mask = np.asarray(Image.fromarray(mask).resize((20, 20), Image.Resampling.NEAREST)) > 0
    assert np.array_equal(out["mask"].numpy(), expected_mask)
    expected = T.ToTensor()(image.resize((20, 20), Image.Resampling.BICUBIC)) * 2 - 1
    torch.testing.assert_close(out["image"], expected)
    augmented = SegTransform(SegTransformParams(size=20, augment=True), CTX)
    torch.manual_seed(0)
    again = augmented({"image": image, "mask": Image.fromarray(mask)})
    assert np.array_equal(again["mask"].numpy(), expected_mask)  # photometric only


def test_tta_averages_the_logits_of_random_views() -> None:
    model = PanDermViT(PanDermViTParams(**TINY), tiny_ctx()).eval()
    tta = PanDermTTA(PanDermTTAParams(resize=36, crop=32, views=5), tiny_ctx())
    tta.wrap(model)
    tta.eval()
    images = torch.rand(2, 3, 40, 40)
    views = PanDermTTA(PanDermTTAParams(resize=36, crop=32, views=5), tiny_ctx()).tta_views(images)
    assert views.shape == (5, 2, 3, 32, 32)
    with torch.no_grad():
        out = tta({"image": images})
        expected = torch.stack([model({"image": v})["logits"] for v in views]).mean(0)
    torch.testing.assert_close(out["logits"], expected)
    torch.testing.assert_close(out["probs"], expected.softmax(-1))
    state = torch.random.get_rng_state()
    with torch.no_grad():
        second = tta({"image": images})["logits"]
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched
    assert not torch.allclose(second, out["logits"])  # each call draws new views
    tta.train()
    batch = model.example_batch(tiny_ctx(), 2)
    assert tta(batch)["logits"].shape == (2, 3)  # training passes straight through
