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
