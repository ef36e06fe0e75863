"""DKP++ (TPAMI 2025, docs/methods/dkppp.md): DKP plus distribution rehearsal. From the second step
on, the previous domain's rehearser turns each batch into pseudo-old images; the model is trained on both views
(CE, set triplets within and across them) and distils, on the pseudo-old view, the batch affinities
of the fused previous model; DKT against the prototypes weighs 1.5. Carried: the fused model, the
last domain's prototypes and its rehearser (a MobileNetV3-small kernel predictor, ~1 M parameters)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.affinity import cosine_affinity
from pad_bench.training.losses import set_triplet
from pad_bench.training.plugins.rehearser import RehearserParams, RehearserPlugin

from ..dkp.strategy import DKP, DKPParams, sample_id_loss


class DKPPlusPlusParams(DKPParams, RehearserParams):
    dkppp_across_triplet_weight: float = hp(0.75, "set triplet over both views (merge_tri_weight)", ge=0)
    dkppp_within_triplet_weight: float = hp(1.5, "a set triplet per view (s_r_tri_weight)", ge=0)
    dkppp_distill_weight: float = hp(0.75, "affinity KD from the old model on the rehearsed view", ge=0)
    dkppp_distill_temperature: float = hp(0.1, "temperature of that affinity KD", gt=0)


@register_strategy("dkppp")
class DKPPlusPlus(DKP):
    """DKP's model, plugins and first-step loss; the rehearsed view's terms from the second step on."""

    Params = DKPPlusPlusParams

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        hp = self.Params(cfg["strategy"])
        self.rehearser = RehearserPlugin.from_params(hp)
        super().__init__(cfg=cfg, plugins=[self.rehearser, *(plugins or [])], **kwargs)

    @classmethod
    def extra_pk_batches(cls, cfg: dict) -> list[tuple[tuple[str, str], int, int]]:
        return [*super().extra_pk_batches(cfg), cls.Params(cfg["strategy"]).pk_batch()]

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        if self.rehearser.current is None:
            return super().compute_loss(out, labels)
        hp = self.hp
        rehearsed = self.rehearser.rehearse(self, self.mb_x)
        with self.autocast():
            r_out = self.model(rehearsed)
        ce = sample_id_loss(out, labels, hp.label_smoothing) + sample_id_loss(r_out, labels, hp.label_smoothing)
        across = set_triplet(torch.cat([r_out["samples"], out["mu"][None], out["samples"]]), r_out["mu"], labels)
        within = set_triplet(out["samples"], out["mu"], labels) + set_triplet(r_out["samples"], r_out["mu"], labels)
        with torch.no_grad(), self.autocast():
            old_mu = self.old.model(rehearsed)["embedding"]
        kd = rehearsal_kd(r_out["mu"], old_mu, hp.dkppp_distill_temperature)
        self.record_losses({"id": ce, "tri": within, "tri_across": across, "rehearsal_kd": kd})
        return (ce + hp.dkppp_across_triplet_weight * across + hp.dkppp_within_triplet_weight * within
                + hp.dkppp_distill_weight * kd)


def rehearsal_kd(mu_new: Tensor, mu_old: Tensor, temperature: float = 0.1) -> Tensor:
    """The released `cal_KL(A_old, A_new)`: KLDivLoss(log A_old, A_new), i.e. KL(A_new ‖ A_old)
    batchmean, A = softmax_row(cos / temperature); the new model's affinities are the target side
    and carry its gradient, the old model's are fixed."""
    a_new = cosine_affinity(mu_new, temperature=temperature)
    a_old = cosine_affinity(mu_old.detach(), temperature=temperature)
    return F.kl_div(a_old.log(), a_new, reduction="batchmean")
