"""Model consolidation after each experience: θ ← α·θ_t + (1−α)·θ_{t−1} (DKP: α = 0.5)."""
from __future__ import annotations

import logging

from avalanche.core import SupervisedPlugin
from torch import nn

from ...errors import UserError
from ..fusion import fuse_state_dicts
from .old_model import OldModelPlugin

log = logging.getLogger("pad_bench")


class FusionPlugin(SupervisedPlugin):
    """Fuses the trained model with `old`'s frozen M_{t−1} at the end of every experience t ≥ 2;
    classifier rows of the new identities come from M_t. Subclasses override `alpha`."""

    def __init__(self, *, old: OldModelPlugin, alpha: float = 0.5):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"fusion alpha must be in [0, 1], got {alpha}")
        self.old, self.fixed_alpha = old, alpha
        self.last_alpha: float | None = None  # α of the experience just trained (None: no fusion)

    def alpha(self, strategy, old_model: nn.Module) -> float:
        """The weight of the newly trained model."""
        return self.fixed_alpha

    def before_training_exp(self, strategy, **kwargs):
        self.last_alpha = None

    def after_training_exp(self, strategy, **kwargs):
        old_model = self.old.model
        if old_model is None:
            return
        alpha = self.alpha(strategy, old_model)
        strategy.model.load_state_dict(fuse_state_dicts(strategy.model.state_dict(), old_model.state_dict(), alpha))
        self.last_alpha = alpha
        log.info("%s: fused experience %d with alpha %.4f", type(self).__name__, strategy.exp_index + 1, alpha)
