"""LSTKC's E-LTKC: fusion weighted by how little the model's relations drifted (docs/methods/lstkc.md)."""
from __future__ import annotations

from torch import nn

from pad_bench.training.plugins.fusion import FusionPlugin
from pad_bench.training.plugins.old_model import OldModelPlugin

from ..eltkc import affinity_alpha


class ELTKCPlugin(FusionPlugin):
    """α = 1 − mean row-L1 distance between the softmax(cos / temperature) affinities of M_t and
    M_{t−1} over the current domain's training images (eval mode, built `block` rows at a time).
    Unclipped (α ∈ [−1, 1]) unless `clip`, which bounds it to [0, 1]."""

    def __init__(self, *, old: OldModelPlugin, temperature: float = 0.01, block: int = 1024, clip: bool = False):
        super().__init__(old=old)
        self.temperature, self.block, self.clip = temperature, block, clip

    def alpha(self, strategy, old_model: nn.Module) -> float:
        data = strategy.experience.dataset
        new = strategy.extract(data)["embedding"]
        old = strategy.extract(data, old_model)["embedding"]
        alpha = affinity_alpha(new, old, self.temperature, self.block)
        return min(max(alpha, 0.0), 1.0) if self.clip else alpha
