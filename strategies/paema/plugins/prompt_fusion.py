"""PAEMA's consolidation after every step t >= 2, weighted by the general prompt's relative change."""
from __future__ import annotations

from torch import nn

from pad_bench.training.plugins.fusion import FusionPlugin

from ..consolidation import prompt_change_alpha


class PromptAlphaFusionPlugin(FusionPlugin):
    """θ = α·θ_t + (1 − α)·θ_{t−1} over the whole state dict (BN statistics and the prompt included,
    old classifier rows only) with α = prompt_change_alpha of the general prompt."""

    def alpha(self, strategy, old_model: nn.Module) -> float:
        return prompt_change_alpha(strategy.model.backbone.prompt, old_model.backbone.prompt)
