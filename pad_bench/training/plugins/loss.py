"""The contract for plugins that add loss terms to a training iteration."""
from __future__ import annotations

from typing import Any

from avalanche.core import SupervisedPlugin
from torch import Tensor

LossTerms = tuple[Tensor, dict[str, Tensor]]  # (weighted total to add, {name: unweighted term})


class LossPlugin(SupervisedPlugin):
    """A plugin that adds loss terms to every training iteration.

    Subclasses implement `loss(strategy)`, returning None (nothing to add this iteration) or the
    weighted total to add and its unweighted terms by name. The base adds the total to
    `strategy.loss` in `before_backward` and records the terms with the strategy's own, so they reach
    the progress bar, TensorBoard and the run's losses.csv.
    """

    def loss(self, strategy: Any) -> LossTerms | None:
        raise NotImplementedError

    def before_backward(self, strategy, **kwargs):
        out = self.loss(strategy)
        if out is None:
            return
        total, terms = out
        strategy.loss = strategy.loss + total
        strategy.record_losses(terms)
