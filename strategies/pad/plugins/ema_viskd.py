"""EMA-VISKD (docs/methods/pad.md#losses): an EMA teacher of the image side, with feature and logit distillation.

From the PADContext it reads `kd_active` (KD applies in this domain), `model` (a PADNet: its image
side is copied into the teacher), `text_bank` (this domain's fixed bank, after stage 1) and
`autocast()`; from Avalanche's strategy the batch (`mb_x`) and the student's taps (`mb_output`). It
returns its terms as a LossPlugin.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from pad_bench.errors import UserError
from pad_bench.training.plugins.loss import LossPlugin, LossTerms

from ..context import PADContext
from ..distill import FEATKD_REDUCTIONS, ema_update_, feat_kd, logit_kd
from ..prompts import ImageTeacher

BANKS = ("current", "all_seen")


class EMAVisKDPlugin(LossPlugin):
    """Teacher = the image side at the start of the experience, then θ_t ← α·θ_t + (1-α)·θ_s after every
    step, over the tensors that train (one fused update; the frozen ones are shared with the student).
    The released code also averages the BNNeck statistics; they never reach a KD term (KD reads the
    pre-BN taps), so the teacher has no necks.

    Loss terms: feat_weight · featKD over `taps` + logit_weight · logitKD (T = temperature) on
    proj·bankᵀ, where the bank is this domain's text bank ('current') or every seen domain's
    banks followed by it ('all_seen'; the earlier banks are carried state).
    """

    carried = ("seen_banks",)

    def __init__(self, *, ctx: PADContext, alpha: float = 0.997, feat_weight: float = 0.5, logit_weight: float = 0.5,
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
        self.ctx = ctx
        self.alpha, self.feat_weight, self.logit_weight = alpha, feat_weight, logit_weight
        self.temperature, self.taps, self.reduction = temperature, tuple(taps), featkd_reduction
        self.bank = bank
        self.seen_banks: list[Tensor] = []
        self.teacher: ImageTeacher | None = None
        self._pairs: tuple[list[Tensor], list[Tensor]] = ([], [])

    def before_training_exp(self, strategy, **kwargs):
        self.teacher, self._pairs = None, ([], [])
        if self.ctx.kd_active:
            self.teacher = ImageTeacher.of(self.ctx.model)
            self._pairs = self.teacher.ema_pairs(self.ctx.model)

    def loss(self, strategy) -> LossTerms | None:
        if self.teacher is None:
            return None
        with torch.no_grad(), self.ctx.autocast():
            teacher_out = self.teacher(strategy.mb_x)
        bank = self.ctx.text_bank
        if self.bank == "all_seen" and self.seen_banks:
            bank = torch.cat([b.to(bank.device) for b in self.seen_banks] + [bank])
        loss, feat, logit = self.kd_loss(strategy.mb_output, teacher_out, bank)
        return loss, {"featkd": feat, "logitkd": logit}

    def kd_loss(self, student_out: dict, teacher_out: dict, bank: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(feat_weight·featKD + logit_weight·logitKD, featKD, logitKD) of one batch."""
        feat = feat_kd(student_out, teacher_out, self.taps, self.reduction)
        logit = logit_kd(student_out["proj"], teacher_out["proj"], bank, self.temperature)
        return self.feat_weight * feat + self.logit_weight * logit, feat, logit

    def state_dict(self) -> dict:
        """The state contract: the teacher's EMA-moved tensors (empty between experiences)."""
        return {"teacher": [t.detach().clone() for t in self._pairs[0]]} if self.teacher is not None else {}

    def load_state_dict(self, state: dict) -> None:
        """After the experience set-up made the teacher from the experience's starting model."""
        saved = state.get("teacher")
        if saved is None:
            return
        if self.teacher is None or len(saved) != len(self._pairs[0]):
            raise UserError("the checkpoint's EMA teacher does not match this run's model; it was written "
                            "by another configuration")
        with torch.no_grad():
            for t, v in zip(self._pairs[0], saved):
                t.copy_(v)

    def after_update(self, strategy, **kwargs):
        ema_update_(*self._pairs, self.alpha)

    def after_training_exp(self, strategy, **kwargs):
        if self.bank == "all_seen":
            self.seen_banks.append(self.ctx.text_bank.detach().cpu())
        self.teacher, self._pairs = None, ([], [])
