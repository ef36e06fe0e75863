"""Joint training, the upper bound: all domains' selected identities in one experience
(BASELINES.md §3), trained and evaluated like every other run."""
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy


@register_strategy("joint")
class Joint(ReIDStrategy):
    joint = True
