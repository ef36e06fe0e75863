"""Loss functions shared by the strategies. Pure functions of tensors, testable on their own."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def id_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy with y' = (1-eps)·onehot + eps/K (eps = label_smoothing)."""
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def pairwise_sq_dist(x: Tensor) -> Tensor:
    x = x.float()
    sq = (x * x).sum(1)
    return (sq[:, None] + sq[None, :] - 2 * x @ x.t()).clamp_min(0)


def batch_hard_triplet(feats: Tensor, labels: Tensor, margin: float | None = 0.3,
                       normalize: bool = False) -> Tensor:
    """Batch-hard triplet on Euclidean distances: hardest positive vs hardest negative per anchor.

    margin=None gives the soft-margin form log(1 + exp(d_ap - d_an)) (LSTKC/DKP).
    """
    if normalize:
        feats = F.normalize(feats.float(), dim=1)
    dist = pairwise_sq_dist(feats).clamp_min(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    d_ap = (dist - 1e6 * (~same).float()).max(1).values.clamp_min(0)
    d_an = (dist + 1e6 * same.float()).min(1).values
    if margin is None:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


def reid_losses(out: dict, labels: Tensor, hp, triplet_taps: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    """(ID loss summed over the model's head logits, batch-hard triplet summed over `triplet_taps`),
    with the strategy's label_smoothing, triplet_margin and optional triplet_normalize."""
    ce = sum(id_loss(out["logits"][t], labels, hp.label_smoothing) for t in out["logits"])
    tri = sum(batch_hard_triplet(out[t], labels, hp.triplet_margin, hp.triplet_normalize)
              for t in triplet_taps)
    return ce, tri


def kd_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)), batchmean, teacher detached."""
    t = temperature
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    p_t = F.softmax(teacher_logits.detach().float() / t, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * t * t


def set_triplet(samples: Tensor, mu: Tensor, labels: Tensor) -> Tensor:
    """Soft-margin batch-hard triplet with the sampled features (S, B, d) as anchors and the batch
    means μ (B, d) as positives and negatives: mean log(1 + exp(d_ap − d_an)) over the S·B anchors."""
    s, b, d = samples.shape
    anchors = samples.reshape(s * b, d).float()
    mu = mu.float()
    sq = anchors.square().sum(1, keepdim=True) + mu.square().sum(1) - 2 * anchors @ mu.t()
    dist = sq.clamp_min(1e-12).sqrt()
    same = labels.repeat(s)[:, None] == labels[None, :]
    d_ap = torch.where(same, dist, torch.full_like(dist, -torch.inf)).max(dim=1).values
    d_an = torch.where(same, torch.full_like(dist, torch.inf), dist).min(dim=1).values
    return F.softplus(d_ap - d_an).mean()
