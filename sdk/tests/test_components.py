"""Contracts of the component bases that the type system alone does not enforce."""

from __future__ import annotations

import pytest
from asklepios_sdk import ShardedSampler


def test_a_sharded_sampler_without_epoch_indices_cannot_be_built():
    class Incomplete(ShardedSampler):
        pass

    with pytest.raises(TypeError, match="epoch_indices"):
        Incomplete(4)


def test_a_sharded_sampler_pads_and_strides_its_global_order():
    class Reverse(ShardedSampler):
        def epoch_indices(self, epoch, generator):
            return list(reversed(range(self.num_samples)))

    assert list(Reverse(5)) == [4, 3, 2, 1, 0]
    shares = [list(Reverse(5, rank=r, world_size=2)) for r in (0, 1)]
    assert shares == [[4, 2, 0], [3, 1, 4]]


def test_segmentation_examples_carry_a_mask_and_per_pixel_logits():
    from asklepios_sdk import BuildContext, DataFacts, Evaluator, Loss, example_batch

    facts = DataFacts(task="segmentation", num_classes=3, in_channels=3, image_size=(6, 5))
    ctx = BuildContext(data=facts)
    batch = example_batch(ctx, 4)
    assert batch["image"].shape == (4, 3, 6, 5)
    assert batch["mask"].shape == (4, 6, 5) and batch["mask"].dtype.is_floating_point is False
    assert set(batch["mask"].unique().tolist()) <= {0, 1, 2}
    outputs, _ = Loss().example_inputs(ctx, 4)
    assert outputs["logits"].shape == (4, 3, 6, 5) and outputs["logits"].requires_grad

    class Nothing(Evaluator):
        def update(self, outputs, batch):
            pass

        def compute(self):
            return {}

    outputs, _ = Nothing().example_inputs(ctx, 8)
    assert outputs["logits"].shape == (8, 3, 6, 5)
    classification = example_batch(BuildContext(data=DataFacts(num_classes=3)), 2)
    assert "mask" not in classification


def test_build_component_builds_a_registered_component_through_the_host():
    from asklepios_sdk import BuildContext, ComponentError, DataFacts
    from asklepios_sdk.components import build_component
    from asklepios_sdk.testing import host_components

    facts = DataFacts(num_classes=3, num_features=4)
    with pytest.raises(ComponentError, match=r"ctx\.components"):
        build_component("backbone", "core.mlp", {}, BuildContext(data=facts), where="x.backbone")
    ctx = BuildContext(data=facts, components=host_components)
    model = build_component("backbone", "core.mlp", {"hidden": [5]}, ctx, where="x.backbone")
    assert type(model).__name__ == "MLPBackbone"
    with pytest.raises(Exception, match=r"x\.backbone\.hidden"):
        build_component("backbone", "core.mlp", {"hidden": "wide"}, ctx, where="x.backbone")
