"""LSTKC++ (TPAMI 2025, docs/methods/lstkcpp.md): LSTKC with its knowledge split into a
last-step and a long-term model. Each iteration distils batch affinities from the last-step model
(and, from the third step on, from the long-term model too, with a two-teacher rectified target);
after each step the long-term and last-step models are fused with a searched weight, and the result
with the trained model by an affinity-overlap α. Carried: the fused model, the last-step model and
the long-term model."""
from __future__ import annotations

from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy

from ..lstkc.strategy import LSTKCParams
from .plugins.consolidation import LongShortConsolidationPlugin, LongShortMemory
from .plugins.long_short_kd import LongShortKDPlugin


class LSTKCPlusPlusParams(LSTKCParams):
    lstkcpp_absolute_delta: bool = hp(False, "alpha = 1 - mean row-L1 distance (LSTKC's form) instead of the overlap")


@register_strategy("lstkcpp")
class LSTKCPlusPlus(ReIDStrategy):
    """The base losses with the long short-term distillation and consolidation plugins."""

    # the teachers exist before the distillation reads them; consolidation updates them last
    plugin_order = (LongShortMemory, LongShortKDPlugin, LongShortConsolidationPlugin)
    Params = LSTKCPlusPlusParams

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        hp = self.Params(cfg["strategy"])
        memory = LongShortMemory()
        kd = LongShortKDPlugin(memory=memory, weight=hp.rstkt_weight, temperature=hp.rstkt_temperature)
        self.consolidation = LongShortConsolidationPlugin(
            memory=memory, temperature=hp.ltkc_temperature, block=hp.ltkc_block,
            absolute_delta=hp.lstkcpp_absolute_delta, clip=hp.lstkc_clip_alpha)
        super().__init__(cfg=cfg, plugins=[memory, kd, self.consolidation, *(plugins or [])], **kwargs)

    def param_report(self) -> dict:
        """The base report plus the experience's fusion α and long/last-step weight β (None when unused)."""
        c = self.consolidation
        return {**super().param_report(), "fusion_alpha": c.last_alpha, "long_term_beta": c.last_beta}
