"""Joint training, the upper bound: all domains' selected identities in one experience
(docs/methods/joint.md), trained and evaluated like every other run."""
from pad_bench.registry import register_strategy

from ..finetune.strategy import Finetune


@register_strategy("joint")
class Joint(Finetune):
    """Fine-tune (its YAML's `base:`) on the union of the domains."""

    sees_union = True
