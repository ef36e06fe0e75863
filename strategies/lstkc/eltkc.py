"""LSTKC's E-LTKC weight: how little the model's relations drifted since the previous experience."""
from __future__ import annotations

import torch
from torch import Tensor

from pad_bench.errors import UserError
from pad_bench.training.affinity import cosine_affinity


def affinity_alpha(new: Tensor, old: Tensor, temperature: float = 0.01, block: int = 1024) -> float:
    """LSTKC's α = 1 − mean_i Σ_j |A_new(i,j) − A_old(i,j)|, A = softmax_row(cos / temperature).

    `new`, `old`: (N, d) features of the same N images by M_t and M_{t−1}. The N×N affinities
    are built `block` rows at a time, so memory stays O(block·N). α lies in [−1, 1]; it is not clipped.
    """
    if new.shape[0] != old.shape[0] or new.shape[0] == 0:
        raise UserError(f"affinity_alpha needs the same non-zero number of features from both models, "
                        f"got {new.shape[0]} and {old.shape[0]}")
    if block < 1:
        raise UserError(f"affinity block size must be >= 1, got {block}")
    total = torch.zeros((), dtype=torch.float64, device=new.device)
    for start in range(0, new.shape[0], block):
        a_new = cosine_affinity(new[start:start + block], new, temperature)
        a_old = cosine_affinity(old[start:start + block], old, temperature)
        total += (a_new - a_old).abs().sum(dtype=torch.float64)
    return float(1 - total / new.shape[0])
