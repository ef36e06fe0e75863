"""A tqdm bar per epoch showing the loss, its terms and images/s."""
from __future__ import annotations

import time

from avalanche.core import SupervisedPlugin
from tqdm.auto import tqdm


class ProgressPlugin(SupervisedPlugin):
    def __init__(self, disable: bool = False):
        super().__init__()
        self.disable = disable
        self.bar = None

    def before_training_epoch(self, strategy, **kwargs):
        self.bar = tqdm(total=len(strategy.dataloader), leave=False, disable=self.disable, mininterval=1.0,
                        desc=f"{strategy.domain_name()} ep {strategy.epoch + 1}/{strategy.train_epochs}")
        self.t0, self.n = time.perf_counter(), 0

    def after_training_iteration(self, strategy, **kwargs):
        self.n += len(strategy.mb_y)
        rate = self.n / max(time.perf_counter() - self.t0, 1e-9)
        terms = {k: f"{v:.3f}" for k, v in strategy.loss_terms.items()}
        self.bar.set_postfix(loss=f"{float(strategy.loss.detach()):.3f}", **terms, img_s=f"{rate:.0f}", refresh=False)
        self.bar.update(1)

    def after_training_epoch(self, strategy, **kwargs):
        self.bar.close()
