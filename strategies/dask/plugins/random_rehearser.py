"""DASK's `--random_rehearser` (continual_train.py:291-294, 410): every epoch uses the rehearser of a
random earlier domain instead of the previous domain's."""
from __future__ import annotations

import random

from torch import Tensor

from pad_bench.training.plugins.rehearser import RehearserPlugin
from pad_bench.training.rehearser import KernelPredictor


class RandomRehearserPlugin(RehearserPlugin):
    """Keeps every earlier domain's rehearser (`earlier`, then `state` for the previous domain) and
    loads one of them, drawn uniformly per epoch, as `current`."""

    carried = ("state", "earlier")

    def __init__(self, *, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.earlier: list[dict[str, Tensor]] = []

    def before_training_epoch(self, strategy, **kwargs):
        if self.state is None:
            return
        rng = random.Random(f"{self.seed}:{strategy.exp_index}:{strategy.epoch}")  # the same draw on resume
        self.current = KernelPredictor().to(strategy.device)
        self.current.load_state_dict(rng.choice([*self.earlier, self.state]))
        self.current.train()

    def after_training_exp(self, strategy, **kwargs):
        if self.state is not None:
            self.earlier.append(self.state)
        super().after_training_exp(strategy, **kwargs)
