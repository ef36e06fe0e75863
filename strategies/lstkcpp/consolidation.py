"""LSTKC++'s consolidation weights: the affinity-overlap α and the self-retrieval score that picks
the long-term/last-step weight β (docs/methods/lstkcpp.md)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.metrics.retrieval import evaluate_retrieval
from pad_bench.training.plugins.old_model import frozen_copy

BETA_GRID = tuple(i / 10 for i in range(11))


def overlap_alpha(new: Tensor, old: Tensor, temperature: float = 1 / 400, block: int = 1024) -> float:
    """α = mean_i Σ_{j≠i} A_new(i,j)·A_old(i,j), A = softmax over j ≠ i of cos(f_i, f_j) / temperature
    (the released get_adaptive_alpha; α ∈ [0, 1]). Built `block` rows at a time."""
    if new.shape[0] != old.shape[0] or new.shape[0] < 2:
        raise UserError(f"overlap_alpha needs the same number (>= 2) of features from both models, "
                        f"got {new.shape[0]} and {old.shape[0]}")
    new, old = F.normalize(new.float(), dim=1), F.normalize(old.float(), dim=1)
    total = torch.zeros((), dtype=torch.float64, device=new.device)
    for start in range(0, len(new), block):
        rows = torch.arange(start, min(start + block, len(new)), device=new.device)

        def affinity(x: Tensor) -> Tensor:
            logits = x[rows] @ x.t() / temperature
            logits[torch.arange(len(rows), device=x.device), rows] = -torch.inf
            return F.softmax(logits, dim=1)

        total += (affinity(new) * affinity(old)).sum(dtype=torch.float64)
    return float(total / len(new))


def self_retrieval_map(feats: Tensor, labels: Tensor, camids: Tensor) -> float:
    """mAP of every image against all the others (same-camera matches excluded); when no image has a
    cross-camera match, every image counts as its own camera, as the released code falls back to."""
    try:
        return evaluate_retrieval(feats, feats, labels, labels, camids, camids)["mAP"]
    except ValueError:
        own = torch.arange(len(feats), device=feats.device)
        return evaluate_retrieval(feats, feats, labels, labels, own, own)["mAP"]


def model_with_state(template: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    """A frozen eval-mode copy of `template` holding `state` (classifier rows resized to fit)."""
    model = frozen_copy(template)
    model.resize_for_state_dict(state)
    model.load_state_dict(state)
    return model

