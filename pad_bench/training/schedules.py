"""Learning-rate schedules as pure functions of the epoch (stepped once per epoch)."""
from __future__ import annotations


def warmup_multistep(epoch: int, milestones: list[int], *, warmup_epochs: int = 10, warmup_factor: float = 0.1,
                     gamma: float = 0.1) -> float:
    """WarmupMultiStepLR factor after `epoch` scheduler steps: (e < W ? f + (1-f)·e/W : 1) · γ^{#milestones ≤ e}.
    Stepped after each epoch, the 0-based epoch e trains at factor(e); stepped before, at factor(e + 1)."""
    warm = warmup_factor + (1 - warmup_factor) * epoch / warmup_epochs if epoch < warmup_epochs else 1.0
    return warm * gamma ** sum(epoch >= m for m in milestones)


def per_domain_list(value: list, index: int) -> list:
    """Milestones: one list for all domains, or a list of lists (one per domain)."""
    if value and isinstance(value[0], list):
        return value[min(index, len(value) - 1)]
    return value
