"""Parameter fusion of two models (LSTKC's E-LTKC, DKP's consolidation)."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from ..errors import UserError


def fuse_state_dicts(new: Mapping[str, Tensor], old: Mapping[str, Tensor], alpha: float, *,
                     allow_shrink: bool = False) -> dict[str, Tensor]:
    """θ = α·θ_new + (1−α)·θ_old for every entry, BN buffers included (docs/methods/lstkc.md).

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
