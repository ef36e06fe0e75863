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
from pad_bench.models import model_family
from pad_bench.registry import register_strategy
from pad_bench.training.affinity import cosine_affinity
from pad_bench.training.plugins.rehearser import RehearserPlugin
from pad_bench.training.rehearser import Normalisation, apply_kernels

from ..dkp.prototypes import set_triplet
from ..dkp.strategy import DKP, DKPParams, sample_id_loss


class DKPPlusPlusParams(DKPParams):
    dkppp_across_triplet_weight: float = hp(0.75, "set triplet over both views (merge_tri_weight)", ge=0)
    dkppp_within_triplet_weight: float = hp(1.5, "a set triplet per view (s_r_tri_weight)", ge=0)
    dkppp_distill_weight: float = hp(0.75, "affinity KD from the old model on the rehearsed view", ge=0)
    dkppp_distill_temperature: float = hp(0.1, "temperature of that affinity KD", gt=0)
    dkppp_rehearser_iters: int = hp(20000, "rehearser iterations per domain (train_transfer.py: 50 x 400)", ge=0)
    dkppp_rehearser_batch: list[int] = hp([32, 4], "the rehearser's P x K batch: [identities, images each]", ge=1)
    dkppp_rehearser_lr: float = hp(2.0e-4, "the rehearser's Adam LR", ge=0)
    dkppp_rehearser_weights: str | None = hp(None, "ImageNet MobileNetV3-small state dict; null = random init")


@register_strategy("dkppp")
class DKPPlusPlus(DKP):
    """DKP's model, plugins and first-step loss; the rehearsed view's terms from the second step on."""

    Params = DKPPlusPlusParams

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        hp = self.Params(cfg["strategy"])
        self.rehearser = RehearserPlugin(iters=hp.dkppp_rehearser_iters, batch=hp.dkppp_rehearser_batch,
                                         lr=hp.dkppp_rehearser_lr, weights=hp.dkppp_rehearser_weights)
        super().__init__(cfg=cfg, plugins=[self.rehearser, *(plugins or [])], **kwargs)
        self.norm: Normalisation | None = None

    @classmethod
    def extra_pk_batches(cls, cfg: dict) -> list[tuple[tuple[str, str], int, int]]:
        p, k = cls.Params(cfg["strategy"]).dkppp_rehearser_batch
        keys = ("strategy.dkppp_rehearser_batch[0]", "strategy.dkppp_rehearser_batch[1]")
        return [*super().extra_pk_batches(cfg), (keys, int(p), int(k))]

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        net = self.rehearser.current
        if net is None:
            return super().compute_loss(out, labels)
        hp = self.hp
        if self.norm is None:
            self.norm = Normalisation(model_family(self.cfg["model"]["name"]), self.device)
        raw = self.norm.invert(self.mb_x)
        with torch.no_grad():
            rehearsed = apply_kernels(raw, net(raw))
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
