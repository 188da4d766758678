"""A stand-in CLIP for tests: feature pass-through plus a tiny word-level text tower."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class StubClip(nn.Module):
    """Feature pass-through with a tiny word-level text tower (CoOp's interface)."""

    length, width = 12, 16

    def __init__(self, dim: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.feature_dim = dim
        self.vocab: dict[str, int] = {}
        self.embed = nn.Embedding(100, self.width)
        self.position = nn.Parameter(torch.randn(self.length, self.width, generator=gen) * 0.1)
        self.mix = nn.Linear(self.width, self.width)
        self.project = nn.Linear(self.width, dim, bias=False)
        self.requires_grad_(False)

    def tokenize(self, texts):
        rows = []
        for text in texts:
            ids = [self.vocab.setdefault(w, 3 + len(self.vocab)) for w in text.split()]
            row = [1, *ids, 99][: self.length]
            rows.append(row + [0] * (self.length - len(row)))
        return torch.tensor(rows)

    def token_embedding(self, tokens):
        return self.embed(tokens)

    def encode_token_embeddings(self, embeddings, tokens):
        x = torch.tanh(self.mix(embeddings + self.position))
        mask = (tokens != 0).unsqueeze(-1).float()  # mixing across tokens, as attention would
        pooled = (x * mask).sum(dim=1) / mask.sum(dim=1)
        return F.normalize(self.project(pooled), dim=-1)

    def forward(self, batch):
        return {"features": F.normalize(batch["image"], dim=-1)}
