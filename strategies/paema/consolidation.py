"""PAEMA's adaptive knowledge consolidation: the fusion weight is the relative change of the general
prompt during the step, so a step that moved the prompt a lot keeps more of the new model."""
from __future__ import annotations

import torch
from torch import Tensor


def prompt_change_alpha(new: Tensor, old: Tensor) -> float:
    """α = mean over all entries of 2|p_new − p_old| / (|p_new| + |p_old|), unclipped (α ∈ [0, 2]).

    An entry that is 0 in both prompts counts as unchanged (0) rather than 0/0."""
    new, old = new.detach().double(), old.detach().double().to(new.device)
    den = new.abs() + old.abs()
    ratio = torch.where(den > 0, 2 * (new - old).abs() / den.clamp_min(torch.finfo(den.dtype).tiny),
                        torch.zeros_like(den))
    return float(ratio.mean())

