"""A frozen copy M_{t−1} of the model for the experience being trained (LSTKC, DKP)."""
from __future__ import annotations

import copy
from typing import ClassVar

from avalanche.core import SupervisedPlugin
from torch import nn


class OldModelPlugin(SupervisedPlugin):
    """Copies the model at the start of every experience after the first, before its heads grow,
    and drops the copy when training ends: it is transient, never carried between experiences.

    Put it before the plugins that read `model`, so that the copy exists when they run.
    """

    distils: ClassVar[bool] = True  # the strategy's `kd_active` (summary.json "kd") from the second experience

    def __init__(self):
        super().__init__()
        self.model: nn.Module | None = None

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        self.model = frozen_copy(strategy.model) if strategy.exp_index > 0 else None

    def after_training(self, strategy, **kwargs):
        self.model = None


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode without gradients."""
    return copy.deepcopy(model).eval().requires_grad_(False)
