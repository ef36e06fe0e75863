"""Fine-tune, the lower bound: CLIP-ReID-style ID (label smoothing) + triplet losses on a
classifier grown per domain (docs/methods/finetune.md). Nothing is carried but the model, unless
`strategy.avalanche_plugins` attaches Avalanche's regularisers (EWC, LwF, SI, MAS;
docs/methods/regularisers.md)."""
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.plugins.avalanche_regularisers import build_regularisers


@register_strategy("finetune")
class Finetune(ReIDStrategy):
    """The base strategy as is: every behaviour lives in ReIDStrategy's default hooks."""

    @classmethod
    def finalize_config(cls, cfg: dict) -> None:
        """Refuse a bad `avalanche_plugins` list before the run directory is written."""
        build_regularisers(cfg["strategy"].get("avalanche_plugins"))

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        extra = build_regularisers(cfg["strategy"].get("avalanche_plugins"))
        super().__init__(cfg=cfg, plugins=[*(plugins or []), *extra], **kwargs)
