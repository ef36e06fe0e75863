"""What the strategy does to a batch of the cached data path once it is on the training device."""
from __future__ import annotations

import torch
from torch import Tensor

from .tensor_transforms import Normalize, TensorTrainTransform


class DeviceInput:
    """Train batches: the tensor train transform of each sample's domain, drawn from a generator
    seeded by (run seed, step), so a batch is the same whenever it is replayed. Eval batches:
    normalisation only."""

    def __init__(self, train: list[TensorTrainTransform], eval_normalize: Normalize, seed: int):
        self.train, self.eval_normalize, self.seed = train, eval_normalize, seed

    def train_batch(self, x: Tensor, domains: Tensor, step: int) -> Tensor:
        gen = torch.Generator(device=x.device)
        gen.manual_seed((self.seed * 1_000_003 + step) % 2**63)
        present = torch.unique(domains).tolist()
        if len(present) == 1:
            return self.train[int(present[0])](x, gen)
        out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
        for d in present:  # joint training: each domain keeps its own augmentation settings
            rows = domains == d
            out[rows] = self.train[int(d)](x[rows], gen)
        return out

    def eval_batch(self, x: Tensor) -> Tensor:
        return self.eval_normalize(x)
