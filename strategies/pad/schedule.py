"""PAD's stage-1 learning rate (warm-up then cosine), a pure function of the epoch."""
from __future__ import annotations

import math


def stage1_lr(epoch: int, base_lr: float, epochs: int, *, lr_min: float = 1e-6, warmup_lr: float = 1e-5,
              warmup_epochs: int = 3) -> float:
    """timm CosineLRScheduler(t_initial=epochs, lr_min, warmup_lr_init, warmup_t) after step(epoch), epoch = 1..E."""
    if epoch < warmup_epochs:
        return warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs
    return lr_min + 0.5 * (base_lr - lr_min) * (1 + math.cos(math.pi * epoch / epochs))
