"""LSTKC's rectified short-term knowledge transfer (R-STKT, docs/methods/lstkc.md), as in the released code."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.training.affinity import correctness_marks, cosine_affinity, log_cosine_affinity


def rectified_target(a_new: Tensor, a_old: Tensor, labels: Tensor) -> Tensor:
    """The row-normalised R-STKT target T from the new and old models' (N, N) batch affinities.

    Where the old model is right: A_old; old wrong, new right: A_new; both FN: the larger of the two
    rows' Thres_P; both FP: the smaller of the two rows' Thres_N.
    """
    same = labels[:, None] == labels[None, :]
    new, old = correctness_marks(a_new, same), correctness_marks(a_old, same)
    target = torch.where(old.right, a_old, torch.zeros_like(a_new))
    target = torch.where(~old.right & new.right, a_new, target)
    target = torch.where(old.fn & new.fn, torch.maximum(new.thres_p, old.thres_p).expand_as(a_new), target)
    target = torch.where(old.fp & new.fp, torch.minimum(new.thres_n, old.thres_n).expand_as(a_new), target)
    return target / target.sum(dim=1, keepdim=True)


def rstkt_loss(feats_new: Tensor, feats_old: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """KL(T ‖ A_new), batchmean, with A = softmax_row(cos / temperature) of each model's batch features.

    As in the released code the target is not detached: it also carries the new model's gradient.
    """
    a_new = cosine_affinity(feats_new, temperature=temperature)
    a_old = cosine_affinity(feats_old.detach(), temperature=temperature)
    target = rectified_target(a_new, a_old, labels)
    return F.kl_div(log_cosine_affinity(feats_new, temperature), target, reduction="batchmean")
