"""The hooks PAD's stage 1 offers to plugins (it runs outside Avalanche's epoch loop)."""
from __future__ import annotations

from avalanche.core import SupervisedPlugin
from torch import Tensor

from pad_bench.training.plugins.loss import LossTerms


class Stage1Plugin(SupervisedPlugin):
    """A plugin taking part in stage 1: `start_stage1()` once before its first step, then
    `stage1_loss(image, labels)` for every chunk of cached image features, returning None or the
    weighted total to add to the SupCon loss and its unweighted terms."""

    def start_stage1(self) -> None:
        """Set up for this domain's stage 1."""

    def stage1_loss(self, image: Tensor, labels: Tensor) -> LossTerms | None:
        return None
