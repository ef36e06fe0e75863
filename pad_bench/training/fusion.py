"""Parameter fusion of two models (LSTKC's E-LTKC, DKP's consolidation) and LSTKC's adaptive weight."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from ..errors import UserError
from .affinity import cosine_affinity


def fuse_state_dicts(new: Mapping[str, Tensor], old: Mapping[str, Tensor], alpha: float, *,
                     allow_shrink: bool = False) -> dict[str, Tensor]:
    """θ = α·θ_new + (1−α)·θ_old for every entry, BN buffers included (BASELINES.md §4–5).

    An entry that grew along dim 0 since `old` (a classifier with new identities) fuses only its
    first rows, the old identities; the rows after them come from `new`. With allow_shrink, an entry
    of `new` with fewer rows than `old` (an earlier model fused with a later one, as LSTKC++ does)
    keeps its own row count and fuses them with `old`'s first rows. Integer buffers (BN's
    num_batches_tracked) come from `new`.
    """
    if set(new) != set(old):
        diff = sorted(set(new) ^ set(old))
        raise UserError(f"cannot fuse models with different parameters: {', '.join(diff[:5])}")
    fused = {}
    for key, t_new in new.items():
        if not t_new.is_floating_point():
            fused[key] = t_new.clone()
            continue
        t_old = old[key].to(t_new)
        if t_new.shape == t_old.shape:
            fused[key] = alpha * t_new + (1 - alpha) * t_old
        elif t_new.dim() and t_new.shape[1:] == t_old.shape[1:] and t_new.shape[0] > t_old.shape[0]:
            n = t_old.shape[0]
            fused[key] = torch.cat([alpha * t_new[:n] + (1 - alpha) * t_old, t_new[n:]])
        elif allow_shrink and t_new.dim() and t_new.shape[1:] == t_old.shape[1:]:
            fused[key] = alpha * t_new + (1 - alpha) * t_old[:t_new.shape[0]]
        else:
            raise UserError(f"cannot fuse '{key}': shape {tuple(t_new.shape)} did not grow from {tuple(t_old.shape)}")
    return fused


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
