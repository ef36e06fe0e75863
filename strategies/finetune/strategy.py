"""Fine-tune, the lower bound: CLIP-ReID-style ID (label smoothing) + triplet losses on a
classifier grown per domain (docs/methods/finetune.md). Nothing is carried but the model."""
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy


@register_strategy("finetune")
class Finetune(ReIDStrategy):
    """The base strategy as is: every behaviour lives in ReIDStrategy's default hooks."""
