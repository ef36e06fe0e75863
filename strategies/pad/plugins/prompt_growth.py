"""VA-prompt growth (docs/methods/pad.md#prompts): new E-prompt slots for every domain, older slots frozen."""
from __future__ import annotations

from typing import Sequence

from avalanche.core import SupervisedPlugin

from pad_bench.config import per_domain

from ..context import PADContext


def domain_slot_counts(table: int | Sequence[int], n_domains: int, pool_size: int) -> list[int]:
    """New slots per domain: table[i] (an int, or a list whose last entry repeats), except that the
    last domain takes whatever the pool has left."""
    counts = [int(per_domain(table, i)) for i in range(n_domains - 1)]
    return counts + [max(pool_size - sum(counts), 0)]


class PromptGrowthPlugin(SupervisedPlugin):
    """Allocates `slots[i]` new slots of the context's prompt pool (a VAPromptPool) for training experience i.

    Runs in `before_train_dataset_adaptation`, i.e. before `make_optimizer`: the new slots must be
    trainable when the optimizer is built (docs/architecture.md#hook-order: Avalanche builds the optimizer before before_training_exp).
    """

    def __init__(self, slots: Sequence[int], *, ctx: PADContext):
        super().__init__()
        self.slots, self.ctx = list(slots), ctx

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        self.grow()

    def grow(self) -> None:
        """Allocate the current experience's new slots (training, and the dry run's set-up)."""
        self.ctx.prompt_pool.allocate_new_domain_slots(per_domain(self.slots, self.ctx.exp_index))
