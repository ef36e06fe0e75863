"""What a run hands a strategy at construction, besides the config and the model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class RunContext:
    """The run's side of a strategy: set once, when the strategy is built (run/build.py).

    device_input: the cached data path's device-side transforms (data/device_input.py), applied to
        every batch; None when the loaders yield finished images.
    resume: a `mid_experience_state()` to continue from in the first experience the strategy trains
        (a run resumed inside an experience); None to start it at epoch 0.
    epoch_checkpoint: called with the strategy every `train.checkpoint_every_epochs` epochs inside an
        experience, to write a mid-experience checkpoint; None writes none.
    """

    device_input: Any = None
    resume: dict | None = None
    epoch_checkpoint: Callable[[Any], None] | None = None
