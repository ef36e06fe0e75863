"""DKP's distribution-aware knowledge transfer against the stored prototypes (docs/methods/dkp.md)."""
from __future__ import annotations

from pad_bench.training.plugins.loss import LossPlugin, LossTerms

from ..prototypes import dkt_loss, sample_prototypes
from .prototypes import PrototypePlugin


class DKTPlugin(LossPlugin):
    """Adds weight·L_DKT on the batch μ's whenever `protos` holds a previous domain's prototypes;
    one pseudo-feature per old class is re-sampled every iteration."""

    def __init__(self, *, protos: PrototypePlugin, weight: float = 0.1, lambda1: float = 0.1, lambda2: float = 0.1):
        super().__init__()
        self.protos, self.weight, self.lambda1, self.lambda2 = protos, weight, lambda1, lambda2

    def loss(self, strategy) -> LossTerms | None:
        stored = self.protos.prototypes
        if stored is None:
            return None
        mu = strategy.mb_output["mu"]
        pseudo = sample_prototypes({k: v.to(mu.device) for k, v in stored.items()})
        kd = dkt_loss(mu, pseudo, self.lambda1, self.lambda2)
        return self.weight * kd, {"dkt": kd}
