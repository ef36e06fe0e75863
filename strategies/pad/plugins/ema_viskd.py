"""EMA-VISKD (docs/methods/pad.md#losses): an EMA teacher of the image side, with feature and logit distillation.

From the strategy it reads `kd_active` (KD applies in this domain), `model` (a PADNet: its image side
is copied into the teacher), `mb_x`, `mb_output` (the student's taps), `text_bank` (this domain's
fixed bank, after stage 1) and `autocast()`; it adds its terms to `strategy.loss` in before_backward
and reports them in `strategy.loss_terms`.
"""
from __future__ import annotations

from typing import Sequence

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor

from pad_bench.errors import UserError

from ..distill import FEATKD_REDUCTIONS, ema_update_, feat_kd, logit_kd
from ..prompts import ImageTeacher

BANKS = ("current", "all_seen")


class EMAVisKDPlugin(SupervisedPlugin):
    """Teacher = the image side at the start of the experience, then θ_t ← α·θ_t + (1-α)·θ_s after every
    step, over the tensors that train (one fused update; the frozen ones are shared with the student).
    The released code also averages the BNNeck statistics; they never reach a KD term (KD reads the
    pre-BN taps), so the teacher has no necks.

    Loss terms: feat_weight · featKD over `taps` + logit_weight · logitKD (T = temperature) on
    proj·bankᵀ, where the bank is this domain's text bank ('current') or every seen domain's
    banks followed by it ('all_seen'; the earlier banks are carried state).
    """

    carried = ("seen_banks",)

    def __init__(self, *, alpha: float = 0.997, feat_weight: float = 0.5, logit_weight: float = 0.5,
                 temperature: float = 4.0, taps: Sequence[str] = ("x11", "x12", "proj"),
                 featkd_reduction: str = "mean", bank: str = "current"):
        super().__init__()
        if bank not in BANKS:
            raise UserError(f"logitkd_bank must be one of {', '.join(BANKS)}, got {bank!r}")
        if featkd_reduction not in FEATKD_REDUCTIONS:
            raise UserError(f"featkd_reduction must be one of {', '.join(FEATKD_REDUCTIONS)}, "
                            f"got {featkd_reduction!r}")
        if not 0.0 <= alpha <= 1.0:
            raise UserError(f"ema_alpha is {alpha}; it must be in [0, 1]")
        self.alpha, self.feat_weight, self.logit_weight = alpha, feat_weight, logit_weight
        self.temperature, self.taps, self.reduction = temperature, tuple(taps), featkd_reduction
        self.bank = bank
        self.seen_banks: list[Tensor] = []
        self.teacher: ImageTeacher | None = None
        self._pairs: tuple[list[Tensor], list[Tensor]] = ([], [])

    def before_training_exp(self, strategy, **kwargs):
        self.teacher, self._pairs = None, ([], [])
        if strategy.kd_active:
            self.teacher = ImageTeacher.of(strategy.model)
            self._pairs = self.teacher.ema_pairs(strategy.model)

    def before_backward(self, strategy, **kwargs):
        if self.teacher is None:
            return
        with torch.no_grad(), strategy.autocast():
            teacher_out = self.teacher(strategy.mb_x)
        bank = strategy.text_bank
        if self.bank == "all_seen" and self.seen_banks:
            bank = torch.cat([b.to(bank.device) for b in self.seen_banks] + [bank])
        loss, feat, logit = self.kd_loss(strategy.mb_output, teacher_out, bank)
        strategy.loss = strategy.loss + loss
        strategy.loss_terms.update(featkd=float(feat.detach()), logitkd=float(logit.detach()))

    def kd_loss(self, student_out: dict, teacher_out: dict, bank: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(feat_weight·featKD + logit_weight·logitKD, featKD, logitKD) of one batch."""
        feat = feat_kd(student_out, teacher_out, self.taps, self.reduction)
        logit = logit_kd(student_out["proj"], teacher_out["proj"], bank, self.temperature)
        return self.feat_weight * feat + self.logit_weight * logit, feat, logit

    def after_update(self, strategy, **kwargs):
        ema_update_(*self._pairs, self.alpha)

    def after_training_exp(self, strategy, **kwargs):
        if self.bank == "all_seen":
            self.seen_banks.append(strategy.text_bank.detach().cpu())
        self.teacher, self._pairs = None, ([], [])
