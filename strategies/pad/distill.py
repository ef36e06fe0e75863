"""PAD's contrastive and distillation maths (docs/methods/pad.md#losses) and the fused EMA update. Pure tensor functions."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.errors import UserError
from pad_bench.training.losses import kd_kl

FEATKD_REDUCTIONS = ("mean", "sum")


def supcon(anchor: Tensor, contrast: Tensor, anchor_labels: Tensor, contrast_labels: Tensor,
           temperature: float = 1.0) -> Tensor:
    """-(1/B) Σ_i (1/|P(i)|) Σ_{j∈P(i)} log softmax_j(a_i·c_j / τ), P(i) = {j : y_j = y_i}; no normalisation."""
    logits = anchor.float() @ contrast.float().t() / temperature
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    pos = (anchor_labels[:, None] == contrast_labels[None, :]).float()
    return -((pos * log_prob).sum(1) / pos.sum(1)).mean()


def symmetric_supcon(image: Tensor, text: Tensor, labels: Tensor) -> Tensor:
    """Stage-1 loss L_i2t + L_t2i (τ = 1): row i of `text` is the prompt feature of labels[i]."""
    return supcon(image, text, labels, labels) + supcon(text, image, labels, labels)


def texkd_class_set(batch_labels: Tensor, num_classes: int, max_extra: int = 256,
                    generator: torch.Generator | None = None) -> Tensor:
    """The unique batch labels followed by up to max_extra random other classes of 0..num_classes-1."""
    present = batch_labels.unique()
    absent = torch.ones(num_classes, dtype=torch.bool, device=batch_labels.device)
    absent[present] = False
    others = absent.nonzero().squeeze(1)
    pick = torch.randperm(len(others), generator=generator)[:max_extra].to(others.device)
    return torch.cat([present, others[pick]])


def texkd_loss(image: Tensor, student_text: Tensor, teacher_text: Tensor, *, scale: float = 7.0,
               temperature: float = 0.07) -> Tensor:
    """T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)), z = scale·l2n(image)·l2n(text)ᵀ; row j of each bank is class j."""
    s = F.normalize(image.float(), dim=1)
    z_s = scale * s @ F.normalize(student_text.float(), dim=1).t()
    z_t = scale * s @ F.normalize(teacher_text.float(), dim=1).t()
    return kd_kl(z_s, z_t, temperature)


def feat_kd(student: Mapping[str, Tensor], teacher: Mapping[str, Tensor], taps: Sequence[str],
            reduction: str = "mean") -> Tensor:
    """Mean over taps of the student-teacher distance: element-mean MSE ('mean') or the per-image squared
    L2 norm averaged over the batch ('sum'). The teacher is detached."""
    if reduction not in FEATKD_REDUCTIONS:
        raise UserError(f"featkd_reduction must be one of {', '.join(FEATKD_REDUCTIONS)}, got {reduction!r}")
    terms = []
    for tap in taps:
        sq = (student[tap].float() - teacher[tap].detach().float()).pow(2)
        terms.append(sq.mean() if reduction == "mean" else sq.sum(1).mean())
    return torch.stack(terms).mean()


def logit_kd(student_proj: Tensor, teacher_proj: Tensor, bank: Tensor, temperature: float = 4.0) -> Tensor:
    """T²·KL on image-to-text logits z = proj·bankᵀ (unnormalised), teacher detached."""
    bank = bank.float()
    return kd_kl(student_proj.float() @ bank.t(), teacher_proj.float() @ bank.t(), temperature)


@torch.no_grad()
def ema_update_(teacher: list[Tensor], student: list[Tensor], alpha: float) -> None:
    """θ_t ← α·θ_t + (1-α)·θ_s in place, one fused kernel over all tensors."""
    if teacher:
        torch._foreach_lerp_(teacher, student, 1.0 - alpha)
