"""DASK's affinity maths: the distillation from the old model on each view, and the optional
drift-based fusion weight (docs/methods/dask.md)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.errors import UserError
from pad_bench.training.affinity import cosine_affinity, log_cosine_affinity

# The released get_normal_affinity subtracts 100 from each cosine self-similarity before the
# softmax, which removes the diagonal from each row.
SELF_OFFSET = 100.0


def affinity_kd(feats_new: Tensor, feats_old: Tensor, temperature: float = 0.1) -> Tensor:
    """The released `cal_KL_old`: KLDivLoss(log A_new, A_old) = KL(A_old ‖ A_new), batchmean,
    A = softmax_row(cos / temperature); the old model's affinities are the fixed target."""
    a_old = cosine_affinity(feats_old.detach(), temperature=temperature)
    return F.kl_div(log_cosine_affinity(feats_new, temperature), a_old, reduction="batchmean")


def drift_alpha(new: Tensor, old: Tensor, temperature: float = 0.01, block: int = 1024) -> float:
    """The released get_adaptive_alpha with absolute_delta: α = 1 − mean_i Σ_j |A_new(i,j) − A_old(i,j)|,
    A = softmax_row((cos − 100·I) / temperature) over the same N images' features from M_t and
    M_{t−1}. Built `block` rows at a time (memory O(block·N)); unclipped, as released."""
    if new.shape[0] != old.shape[0] or new.shape[0] == 0:
        raise UserError(f"drift_alpha needs the same non-zero number of features from both models, "
                        f"got {new.shape[0]} and {old.shape[0]}")
    if block < 1:
        raise UserError(f"affinity block size must be >= 1, got {block}")
    new, old = F.normalize(new.float(), dim=1), F.normalize(old.float(), dim=1)
    total = torch.zeros((), dtype=torch.float64, device=new.device)
    for start in range(0, new.shape[0], block):
        rows = torch.arange(start, min(start + block, new.shape[0]), device=new.device)
        self_mask = torch.zeros(len(rows), new.shape[0], device=new.device)
        self_mask[torch.arange(len(rows)), rows] = SELF_OFFSET
        a_new = F.softmax((new[rows] @ new.t() - self_mask) / temperature, dim=1)
        a_old = F.softmax((old[rows] @ old.t() - self_mask) / temperature, dim=1)
        total += (a_new - a_old).abs().sum(dtype=torch.float64)
    return float(1 - total / new.shape[0])
