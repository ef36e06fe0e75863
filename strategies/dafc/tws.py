"""DAFC's task-wise supervisor (TWS, reid/models/TWS.py): experts on the image feature, a gate
driven by the text prompts, and the consistency of each step's experts with earlier steps'."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Expert(nn.Module):
    """linear(x) + MLP(x): fc1, GELU, dropout, fc2, dropout (TWS.py:6-33)."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.1):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) + self.mlp(x)


class TWS(nn.Module):
    """`n` experts and a gate softmax(linear(mean of the text prompts)) over them (TWS.py:36-62)."""

    def __init__(self, dim: int, n: int, dropout: float = 0.1):
        super().__init__()
        self.experts = nn.ModuleList(Expert(dim, dim, dropout) for _ in range(n))
        self.gate = nn.Linear(dim, n)

    def forward(self, feat: Tensor, text_prompts: Tensor) -> tuple[Tensor, Tensor]:
        """(expert outputs (B, D, n), gate weights (B, n)) for features (B, D) and prompts (B, m, D)."""
        outputs = torch.stack([e(feat) for e in self.experts], dim=-1)
        return outputs, F.softmax(self.gate(text_prompts.mean(dim=1)), dim=-1)


def gated_sum(outputs: Tensor, gate: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
    """Σ_e gate_e · output_e over experts start..stop-1 (vit_pytorch.py:630 all, :636 one step's)."""
    return (gate[:, None, start:stop] * outputs[:, :, start:stop]).sum(dim=-1)


def expert_consistency(outputs: Tensor, step: int, per_step: int) -> Tensor:
    """The released `kl_loss` (trainer.py:216-267) for the 0-based step ≥ 1: for each of the step's
    experts i, the mean cosine distance 1 − cos between its outputs and those of expert i of every
    earlier step over all image pairs of the batch, averaged over the earlier steps, then over i."""
    per_expert = []
    for i in range(per_step):
        current = F.normalize(outputs[:, :, per_step * step + i], dim=1)
        earlier = [(1 - current @ F.normalize(outputs[:, :, per_step * s + i], dim=1).t()).mean() for s in range(step)]
        per_expert.append(torch.stack(earlier).mean())
    return torch.stack(per_expert).mean()
