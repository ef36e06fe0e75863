"""LSTKC++'s per-iteration distillation from the last-step (and long-term) teacher."""
from __future__ import annotations

import torch

from pad_bench.training.plugins.loss import LossPlugin, LossTerms

from ..distill import long_short_kd_loss


class LongShortKDPlugin(LossPlugin):
    """Adds weight·long_short_kd_loss on the batch's test features whenever `memory` holds a
    last-step teacher, i.e. from the second experience on (the long-term one from the third)."""

    def __init__(self, *, memory, weight: float = 1.0, temperature: float = 0.1):
        super().__init__()
        self.memory, self.weight, self.temperature = memory, weight, temperature

    def loss(self, strategy) -> LossTerms | None:
        short, long = self.memory.teachers
        if short is None:
            return None
        with torch.no_grad(), strategy.autocast():
            f_short = short(strategy.mb_x)["embedding"]
            f_long = long(strategy.mb_x)["embedding"] if long is not None else None
        kd = long_short_kd_loss(strategy.mb_output["embedding"], f_short, f_long, strategy.mb_y, self.temperature)
        return self.weight * kd, {"lskd": kd}
