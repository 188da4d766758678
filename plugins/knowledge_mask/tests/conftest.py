"""Test set-up: one intra-op thread (tiny tensors; CI machines are shared)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
