"""DASK's model fusion after every experience t ≥ 2 (docs/methods/dask.md#fusion)."""
from __future__ import annotations

from torch import nn

from pad_bench.training.plugins.fusion import FusionPlugin
from pad_bench.training.plugins.old_model import OldModelPlugin

from ..affinity import drift_alpha


class DASKFusionPlugin(FusionPlugin):
    """θ ← α·θ_t + (1−α)·θ_{t−1}: α fixed (the released `--fix_EMA 0.5`), or, with `adaptive`, the
    drift-based α of `drift_alpha` over the current domain's training images (eval mode)."""

    def __init__(self, *, old: OldModelPlugin, alpha: float = 0.5, adaptive: bool = False,
                 temperature: float = 0.01, block: int = 1024):
        super().__init__(old=old, alpha=alpha)
        self.adaptive, self.temperature, self.block = adaptive, temperature, block

    def alpha(self, strategy, old_model: nn.Module) -> float:
        if not self.adaptive:
            return self.fixed_alpha
        data = strategy.experience.dataset
        new, old = strategy.extract(data)["embedding"], strategy.extract(data, old_model)["embedding"]
        return drift_alpha(new, old, self.temperature, self.block)
