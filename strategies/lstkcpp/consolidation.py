"""LSTKC++'s long short-term knowledge consolidation, after every step t ≥ 2 (0-based e ≥ 1):

- e = 1: the old model is the last-step model M_0;
- e ≥ 2: the old model fuses the long-term model with the last-step model M_{e−1}, its weight β picked
  from {0, 0.1, …, 1} by the fused model's self-retrieval mAP on the current domain's training images;
- then θ = α·θ_e + (1 − α)·θ_old with α the overlap of the two models' affinities on those images.

Carried between steps: the last-step (unfused) model and the long-term model, as state dicts.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.metrics.retrieval import evaluate_retrieval
from pad_bench.plugins.old_model import frozen_copy
from pad_bench.training.fusion import affinity_alpha, fuse_state_dicts

log = logging.getLogger("pad_bench")

BETA_GRID = tuple(i / 10 for i in range(11))


def overlap_alpha(new: Tensor, old: Tensor, temperature: float = 1 / 400, block: int = 1024) -> float:
    """α = mean_i Σ_{j≠i} A_new(i,j)·A_old(i,j), A = softmax over j ≠ i of cos(f_i, f_j) / temperature
    (the released get_adaptive_alpha; α ∈ [0, 1]). Built `block` rows at a time."""
    if new.shape[0] != old.shape[0] or new.shape[0] < 2:
        raise UserError(f"overlap_alpha needs the same number (>= 2) of features from both models, "
                        f"got {new.shape[0]} and {old.shape[0]}")
    new, old = F.normalize(new.float(), dim=1), F.normalize(old.float(), dim=1)
    total = torch.zeros((), dtype=torch.float64, device=new.device)
    for start in range(0, len(new), block):
        rows = torch.arange(start, min(start + block, len(new)), device=new.device)

        def affinity(x: Tensor) -> Tensor:
            logits = x[rows] @ x.t() / temperature
            logits[torch.arange(len(rows), device=x.device), rows] = -torch.inf
            return F.softmax(logits, dim=1)

        total += (affinity(new) * affinity(old)).sum(dtype=torch.float64)
    return float(total / len(new))


def self_retrieval_map(feats: Tensor, labels: Tensor, camids: Tensor) -> float:
    """mAP of every image against all the others (same-camera matches excluded); when no image has a
    cross-camera match, every image counts as its own camera, as the released code falls back to."""
    try:
        return evaluate_retrieval(feats, feats, labels, labels, camids, camids)["mAP"]
    except ValueError:
        own = torch.arange(len(feats), device=feats.device)
        return evaluate_retrieval(feats, feats, labels, labels, own, own)["mAP"]


def model_with_state(template: nn.Module, state: dict[str, Tensor]) -> nn.Module:
    """A frozen eval-mode copy of `template` holding `state` (classifier rows resized to fit)."""
    model = frozen_copy(template)
    model.resize_for_state_dict(state)
    model.load_state_dict(state)
    return model


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
