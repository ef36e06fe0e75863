"""Row-softmax cosine affinities, the relation that several methods distil and compare, and the
per-entry correctness marks that rectify them."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def cosine_affinity(x: Tensor, y: Tensor | None = None, temperature: float = 0.1) -> Tensor:
    """softmax_row(cos(x, y) / temperature): (N, d), (M, d) -> (N, M); y defaults to x."""
    x = F.normalize(x.float(), dim=1)
    y = x if y is None else F.normalize(y.float(), dim=1)
    return F.softmax(x @ y.t() / temperature, dim=1)


def log_cosine_affinity(x: Tensor, temperature: float = 0.1) -> Tensor:
    """log of cosine_affinity(x, x), computed stably (for KL inputs)."""
    x = F.normalize(x.float(), dim=1)
    return F.log_softmax(x @ x.t() / temperature, dim=1)


@dataclass
class Marks:
    """Per-entry correctness of one model's batch affinities, and its per-row thresholds (N, 1)."""

    tp: Tensor
    fn: Tensor
    fp: Tensor
    tn: Tensor
    thres_p: Tensor
    thres_n: Tensor

    @property
    def right(self) -> Tensor:
        return self.tp | self.tn


def correctness_marks(affinity: Tensor, same: Tensor) -> Marks:
    """TP/FN among positives (score above the row's largest negative score, the diagonal always TP)
    and FP/TN among negatives (score above the row's smallest positive score, diagonal excluded)."""
    eye = torch.eye(len(same), dtype=torch.bool, device=same.device)
    thres_p = torch.where(same, torch.zeros_like(affinity), affinity).max(dim=1, keepdim=True).values
    thres_n = torch.where(same & ~eye, affinity, torch.full_like(affinity, torch.inf)).min(dim=1, keepdim=True).values
    tp = same & ((affinity > thres_p) | eye)
    fp = ~same & (affinity > thres_n)
    return Marks(tp=tp, fn=same & ~tp, fp=fp, tn=~same & ~fp, thres_p=thres_p, thres_n=thres_n)
