"""LSTKC (AAAI'24, docs/methods/lstkc.md): fine-tune with the growth rule, plus R-STKT distillation from the
frozen previous model at every iteration and E-LTKC fusion with it after every experience t ≥ 2.
Between experiences only the consolidated model is kept; the old model exists during a step only."""
from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.params import ReIDParams
from pad_bench.training.plugins.old_model import OldModelPlugin

from .plugins.eltkc import ELTKCPlugin
from .plugins.rstkt import RSTKTPlugin


class LSTKCParams(ReIDParams):
    rstkt_weight: float = hp(1.0, "weight of R-STKT (every iteration from domain 2 on)", ge=0)
    rstkt_temperature: float = hp(0.1, "R-STKT batch affinities softmax(cos / T)", gt=0)
    ltkc_temperature: float = hp(0.01, "E-LTKC affinities softmax(cos / T) (after every domain from 2 on)", gt=0)
    ltkc_block: int = hp(1024, "E-LTKC affinity rows built at a time (memory O(block x N))", ge=1)
    lstkc_clip_alpha: bool = hp(False, "bound the fusion alpha to [0, 1]; the paper's alpha is unclipped")


@register_strategy("lstkc")
class LSTKC(ReIDStrategy):
    """The base losses (CE + soft-margin triplet) with the R-STKT and E-LTKC plugins."""

    plugin_order = (OldModelPlugin, RSTKTPlugin, ELTKCPlugin)  # the old model's copy exists before they read it
    Params = LSTKCParams

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        hp = self.Params(cfg["strategy"])
        old = OldModelPlugin()
        self.fusion = ELTKCPlugin(old=old, temperature=hp.ltkc_temperature, block=hp.ltkc_block,
                                  clip=hp.lstkc_clip_alpha)
        rstkt = RSTKTPlugin(old=old, weight=hp.rstkt_weight, temperature=hp.rstkt_temperature)
        super().__init__(cfg=cfg, plugins=[old, rstkt, self.fusion, *(plugins or [])], **kwargs)

    def param_report(self) -> dict:
        """The base report plus E-LTKC's α of the experience just trained (None for the first)."""
        return {**super().param_report(), "fusion_alpha": self.fusion.last_alpha}
