"""LSTKC++'s long short-term knowledge consolidation, after every step t ≥ 2 (0-based e ≥ 1):

- e = 1: the old model is the last-step model M_0;
- e ≥ 2: the old model fuses the long-term model with the last-step model M_{e−1}, its weight β picked
  from {0, 0.1, …, 1} by the fused model's self-retrieval mAP on the current domain's training images;
- then θ = α·θ_e + (1 − α)·θ_old with α the overlap of the two models' affinities on those images.

Carried between steps: the last-step (unfused) model and the long-term model, as state dicts.
"""
from __future__ import annotations

import logging

from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from pad_bench.training.fusion import fuse_state_dicts

from ...lstkc.eltkc import affinity_alpha
from ..consolidation import BETA_GRID, model_with_state, overlap_alpha, self_retrieval_map

log = logging.getLogger("pad_bench")


class LongShortMemory(SupervisedPlugin):
    """The last-step and long-term models (state dicts, carried) and, during a step, their frozen
    teacher copies `teachers` = (short, long), either None while it does not exist yet."""

    carried = ("last_state", "long_state")

    def __init__(self):
        super().__init__()
        self.last_state: dict[str, Tensor] | None = None
        self.long_state: dict[str, Tensor] | None = None
        self.teachers: tuple[nn.Module | None, nn.Module | None] = (None, None)

    def before_training_exp(self, strategy, **kwargs):
        self.teachers = tuple(None if s is None else model_with_state(strategy.model, s)
                              for s in (self.last_state, self.long_state))

    def after_training(self, strategy, **kwargs):
        self.teachers = (None, None)


class LongShortConsolidationPlugin(SupervisedPlugin):
    """The consolidation above, at the end of every experience; updates `memory` for the next one.
    `absolute_delta` switches α to LSTKC's 1 − mean row-L1 distance (at the same temperature);
    `clip` bounds α to [0, 1]."""

    def __init__(self, *, memory: LongShortMemory, temperature: float = 1 / 400, block: int = 1024,
                 absolute_delta: bool = False, clip: bool = False):
        super().__init__()
        self.memory, self.temperature, self.block = memory, temperature, block
        self.absolute_delta, self.clip = absolute_delta, clip
        self.last_alpha: float | None = None
        self.last_beta: float | None = None

    def before_training_exp(self, strategy, **kwargs):
        self.last_alpha = self.last_beta = None

    def after_training_exp(self, strategy, **kwargs):
        mem = self.memory
        trained = {k: t.detach().clone() for k, t in strategy.model.state_dict().items()}
        old = mem.last_state
        if old is not None:
            data = strategy.experience.dataset
            if mem.long_state is not None:
                self.last_beta, old = self.search_beta(strategy, data)
            feats_old = strategy.extract(data, model_with_state(strategy.model, old))["embedding"]
            alpha = self.alpha(strategy.extract(data)["embedding"], feats_old)
            strategy.model.load_state_dict(fuse_state_dicts(trained, old, alpha))
            self.last_alpha = alpha
            log.info("LSTKC++: fused experience %d with alpha %.4f (beta %s)", strategy.exp_index + 1, alpha,
                     self.last_beta)
        mem.long_state, mem.last_state = old, trained

    def alpha(self, new: Tensor, old: Tensor) -> float:
        if self.absolute_delta:
            alpha = affinity_alpha(new, old, self.temperature, self.block)
        else:
            alpha = overlap_alpha(new, old, self.temperature, self.block)
        return min(max(alpha, 0.0), 1.0) if self.clip else alpha

    def search_beta(self, strategy, data) -> tuple[float, dict[str, Tensor]]:
        """The β of BETA_GRID (the first of ties) whose fusion β·long + (1 − β)·last retrieves the
        current domain's training images best, and that fused state."""
        mem = self.memory
        best = (-1.0, 0.0, None)
        for beta in BETA_GRID:
            state = fuse_state_dicts(mem.long_state, mem.last_state, beta, allow_shrink=True)
            out = strategy.extract(data, model_with_state(strategy.model, state))
            score = self_retrieval_map(out["embedding"], out["labels"], out["camids"])
            if score > best[0]:
                best = (score, beta, state)
        return best[1], best[2]
