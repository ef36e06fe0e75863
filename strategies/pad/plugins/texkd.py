"""TEXKD (docs/methods/pad.md#losses; the teacher's two readings: #paper-and-released-code): weak distillation of the stage-1 TA-prompts towards a frozen text teacher.

The plugin hooks into PAD's stage 1 (a Stage1Plugin). From the PADContext it reads `kd_active`,
`model.text_features(labels)`, `model.text_bank()`, `text_bank` (the trained bank, after stage 1),
`autocast()`, `seed` and `exp_index`.

Teachers:
  init_prompts (released code): the frozen text encoder on this domain's prompts at initialisation.
  global_bank (paper reading): the same, plus the stored text features of every earlier domain's
    identities ("anchors", carried state) as extra columns, identical for teacher and student, so the
    KL keeps the new prompts placed consistently relative to every old identity.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pad_bench.errors import UserError
from pad_bench.training.plugins.loss import LossTerms

from ..context import PADContext
from ..distill import texkd_class_set, texkd_loss
from .stage1 import Stage1Plugin

TEACHERS = ("global_bank", "init_prompts")


class TexKDPlugin(Stage1Plugin):
    """weight · TEXKD (docs/methods/pad.md#losses) in every stage-1 step of a domain with KD on; stores anchors (global_bank)."""

    carried = ("anchors",)

    def __init__(self, *, ctx: PADContext, teacher: str = "global_bank", weight: float = 0.5,
                 temperature: float = 0.07, scale: float = 7.0, extra_classes: int = 256):
        super().__init__()
        self.ctx = ctx
        if teacher not in TEACHERS:
            raise UserError(f"texkd_teacher must be one of {', '.join(TEACHERS)} (or off), got {teacher!r}")
        self.teacher, self.weight, self.temperature = teacher, weight, temperature
        self.scale, self.extra_classes = scale, extra_classes
        self.anchors: list[Tensor] = []  # global_bank: one (C_d, D) bank per finished domain
        self._teacher_bank: Tensor | None = None
        self._old: Tensor | None = None
        self._generator = torch.Generator()

    def start_stage1(self) -> None:
        ctx = self.ctx
        self._teacher_bank = self._old = None
        if not ctx.kd_active:
            return
        with ctx.autocast():
            self._teacher_bank = ctx.model.text_bank()
        if self.anchors:
            self._old = torch.cat(self.anchors).to(self._teacher_bank.device)
        self._generator.manual_seed(ctx.seed * 1000 + ctx.exp_index)

    def stage1_loss(self, image: Tensor, labels: Tensor) -> LossTerms | None:
        if self._teacher_bank is None:
            return None
        classes = texkd_class_set(labels, len(self._teacher_bank), self.extra_classes, self._generator)
        with self.ctx.autocast():
            student = self.ctx.model.text_features(classes).float()
        teacher = self._teacher_bank[classes]
        if self._old is not None:
            student, teacher = torch.cat([self._old, student]), torch.cat([self._old, teacher])
        loss = texkd_loss(image, student, teacher, scale=self.scale, temperature=self.temperature)
        return self.weight * loss, {"texkd": loss}

    def after_training_exp(self, strategy, **kwargs):
        if self.teacher == "global_bank":
            self.anchors.append(self.ctx.text_bank.detach().cpu())
        self._teacher_bank = self._old = None
