"""LSTKC++'s long short-term knowledge decomposition: affinity distillation from the last-step model
and, from the third step on, from the long-term model too, with targets rectified by each teacher's
correctness (the released `cal_KL_old_only` and `dual_cal_KL_old_only`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.training.affinity import correctness_marks, cosine_affinity, log_cosine_affinity


def single_teacher_target(a_old: Tensor, labels: Tensor) -> Tensor:
    """Row-normalised target from one teacher's (N, N) affinities: its scores where it is right
    (TP, TN), its row's Thres_P on its FNs and its row's Thres_N on its FPs. Unlike LSTKC's R-STKT,
    the new model's own scores never enter the target."""
    m = correctness_marks(a_old, labels[:, None] == labels[None, :])
    target = torch.where(m.right, a_old, torch.zeros_like(a_old))
    target = torch.where(m.fn, m.thres_p.expand_as(a_old), target)
    target = torch.where(m.fp, m.thres_n.expand_as(a_old), target)
    return target / target.sum(dim=1, keepdim=True)


def dual_teacher_target(a_short: Tensor, a_long: Tensor, labels: Tensor) -> Tensor:
    """Row-normalised target from the last-step (short) and long-term teachers' affinities: the mean
    of both where both are right, the one right teacher's score where only one is, the larger
    Thres_P where both miss a positive, the smaller Thres_N where both accept a negative."""
    same = labels[:, None] == labels[None, :]
    s, lo = correctness_marks(a_short, same), correctness_marks(a_long, same)
    target = torch.where(s.right & lo.right, (a_short + a_long) / 2, torch.zeros_like(a_short))
    target = torch.where(s.right & ~lo.right, a_short, target)
    target = torch.where(lo.right & ~s.right, a_long, target)
    target = torch.where(s.fn & lo.fn, torch.maximum(s.thres_p, lo.thres_p).expand_as(a_short), target)
    target = torch.where(s.fp & lo.fp, torch.minimum(s.thres_n, lo.thres_n).expand_as(a_short), target)
    return target / target.sum(dim=1, keepdim=True)


def long_short_kd_loss(feats_new: Tensor, feats_short: Tensor, feats_long: Tensor | None, labels: Tensor,
                       temperature: float = 0.1) -> Tensor:
    """KL(T ‖ A_new), batchmean, A = softmax_row(cos / temperature); T from one teacher or two."""
    a_short = cosine_affinity(feats_short.detach(), temperature=temperature)
    if feats_long is None:
        target = single_teacher_target(a_short, labels)
    else:
        target = dual_teacher_target(a_short, cosine_affinity(feats_long.detach(), temperature=temperature), labels)
    return F.kl_div(log_cosine_affinity(feats_new, temperature), target, reduction="batchmean")

