"""LSTKC's R-STKT: rectified affinity distillation from M_{t−1} at every iteration (docs/methods/lstkc.md)."""
from __future__ import annotations

import torch

from pad_bench.training.plugins.loss import LossPlugin, LossTerms
from pad_bench.training.plugins.old_model import OldModelPlugin

from ..rstkt import rstkt_loss


class RSTKTPlugin(LossPlugin):
    """Adds weight·KL(T ‖ A_new) on the batch's L2-normalised test features ('embedding') whenever
    `old` holds a frozen previous model, i.e. from the second experience on."""

    def __init__(self, *, old: OldModelPlugin, weight: float = 1.0, temperature: float = 0.1):
        super().__init__()
        self.old, self.weight, self.temperature = old, weight, temperature

    def loss(self, strategy) -> LossTerms | None:
        if self.old.model is None:
            return None
        with torch.no_grad(), strategy.autocast():
            feats_old = self.old.model(strategy.mb_x)["embedding"]
        kd = rstkt_loss(strategy.mb_output["embedding"], feats_old, strategy.mb_y, self.temperature)
        return self.weight * kd, {"rstkt": kd}
