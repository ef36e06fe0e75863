"""Joint training, the upper bound: all domains' selected identities in one experience
(docs/methods/joint.md), trained and evaluated like every other run."""
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy


@register_strategy("joint")
class Joint(ReIDStrategy):
    sees_union = True
