"""DASK (AAAI 2025, docs/methods/dask.md): distribution rehearsing with adaptive style kernels. From
the second step on, the previous domain's rehearser turns each batch into pseudo-old images; both
views get the base losses plus affinity distillation from the frozen previous model, the rehearsed
view weighted by β = 4.5; after every step the model is fused with the previous one (α = 0.5).
Carried: the fused model and the last domain's rehearser (a MobileNetV3-small kernel predictor)."""
from __future__ import annotations

import torch
from torch import Tensor

from typing import Literal

from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.params import ReIDParams
from pad_bench.training.losses import reid_losses
from pad_bench.training.plugins.old_model import OldModelPlugin
from pad_bench.training.plugins.rehearser import RehearserParams, RehearserPlugin

from .affinity import affinity_kd
from .plugins.fusion import DASKFusionPlugin
from .plugins.random_rehearser import RandomRehearserPlugin


class DASKParams(ReIDParams, RehearserParams):
    """zhoujiahuan1991/AAAI2025-LReID-DASK at 11d0b3f (docs/methods/dask.md gives each source line)."""

    dask_rehearsed_weight: float = hp(4.5, "--aux_weight (beta): weight of the rehearsed view's whole loss", ge=0)
    dask_distill_weight: float = hp(1.0, "--AF_weight: affinity KD from the old model, on each view", ge=0)
    dask_distill_temperature: float = hp(0.1, "get_normal_affinity: softmax(cos / T)", gt=0)
    dask_fusion: Literal["fixed", "adaptive"] = hp(
        "fixed", "fixed (--fix_EMA 0.5, the default) or adaptive (--fix_EMA -1: the drift-based alpha)")
    dask_fusion_alpha: float = hp(0.5, "--fix_EMA: weight of the newly trained model", ge=0, le=1)
    dask_fusion_temperature: float = hp(0.01, "adaptive only: --global_alpha 100, softmax(100 cos)", gt=0)
    dask_fusion_block: int = hp(1024, "adaptive only: affinity rows built at a time (memory O(block x N))", ge=1)
    dask_random_rehearser: bool = hp(False, "--random_rehearser: each epoch a random earlier domain's rehearser "
                                     "(off in work_re-produce.sh); false: the previous domain's")


@register_strategy("dask")
class DASK(ReIDStrategy):
    """The base losses on the batch and on its rehearsed view, each with affinity KD from M_{t−1}."""

    plugin_order = (OldModelPlugin, RehearserPlugin, DASKFusionPlugin)  # the old model is copied before fusion reads it
    Params = DASKParams

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        hp = self.Params(cfg["strategy"])
        self.old = OldModelPlugin()
        self.rehearser = (RandomRehearserPlugin.from_params(hp, seed=cfg["seed"]) if hp.dask_random_rehearser
                          else RehearserPlugin.from_params(hp))
        self.fusion = DASKFusionPlugin(old=self.old, alpha=hp.dask_fusion_alpha,
                                       adaptive=hp.dask_fusion == "adaptive",
                                       temperature=hp.dask_fusion_temperature, block=hp.dask_fusion_block)
        super().__init__(cfg=cfg, plugins=[self.old, self.rehearser, self.fusion, *(plugins or [])], **kwargs)

    @classmethod
    def extra_pk_batches(cls, cfg: dict) -> list[tuple[tuple[str, str], int, int]]:
        return [*super().extra_pk_batches(cfg), cls.Params(cfg["strategy"]).pk_batch()]

    def view_loss(self, out: dict, x: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """CE + triplet (+ AF_weight · affinity KD from the old model once there is one) of one view."""
        hp = self.hp
        ce, tri = reid_losses(out, labels, hp, self.model.backbone.triplet_taps)
        total, terms = hp.id_weight * ce + hp.triplet_weight * tri, {"id": ce, "tri": tri}
        if self.old.model is not None:
            with torch.no_grad(), self.autocast():
                old_feats = self.old.model(x)["embedding"]
            kd = affinity_kd(out["embedding"], old_feats, hp.dask_distill_temperature)
            total, terms["kd"] = total + hp.dask_distill_weight * kd, kd
        return total, terms

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        total, terms = self.view_loss(out, self.mb_x, labels)
        if self.rehearser.current is not None:
            rehearsed = self.rehearser.rehearse(self, self.mb_x)
            with self.autocast():
                r_out = self.model(rehearsed)
            r_total, r_terms = self.view_loss(r_out, rehearsed, labels)
            total = total + self.hp.dask_rehearsed_weight * r_total
            terms.update({f"rehearsed_{k}": v for k, v in r_terms.items()})
        self.record_losses(terms)
        return total

    def param_report(self) -> dict:
        """The base report plus the fusion α of the experience just trained (None for the first)."""
        return {**super().param_report(), "fusion_alpha": self.fusion.last_alpha}
