"""DKP's distribution maths (docs/methods/dkp.md): set triplet, class prototypes, the DKT loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.errors import UserError
from pad_bench.training.affinity import cosine_affinity, log_cosine_affinity

from .uncertainty import gaussian_samples


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


def class_prototypes(mu: Tensor, sigma: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """Per class c (sorted labels): μ_c = mean(μ) and σ_c = sqrt(mean(σ²) + mean(μ²) − μ_c²),
    the standard deviation of the mixture of the class's instance Gaussians (law of total variance)."""
    if not (len(mu) == len(sigma) == len(labels)) or len(mu) == 0:
        raise UserError(f"class_prototypes needs as many μ, σ and labels (> 0), "
                        f"got {len(mu)}, {len(sigma)}, {len(labels)}")
    classes, index = torch.unique(labels, sorted=True, return_inverse=True)
    counts = torch.bincount(index, minlength=len(classes)).to(mu.dtype)[:, None]

    def class_mean(x: Tensor) -> Tensor:
        return torch.zeros(len(classes), x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, index, x) / counts

    mean = class_mean(mu)
    var = class_mean(sigma.square()) + class_mean(mu.square()) - mean.square()
    return {"labels": classes, "mu": mean, "sigma": var.clamp_min(0).sqrt()}


def sample_prototypes(prototypes: dict[str, Tensor]) -> Tensor:
    """One pseudo-feature per stored class, l2norm(μ_c + ε ⊙ σ_c): (C, d)."""
    return gaussian_samples(prototypes["mu"], prototypes["sigma"], 1)[0]


def dkt_loss(mu: Tensor, pseudo: Tensor, lambda1: float = 0.1, lambda2: float = 0.1) -> Tensor:
    """KL(A_proto ‖ A_new), batchmean: A_new = softmax_row(cos(μ, μ)/λ2), A_proto the same over the
    relation vectors s_i = softmax(cos(μ_i, pseudo)/λ1). Neither side is detached, as released."""
    relations = cosine_affinity(mu, pseudo, lambda1)
    return F.kl_div(log_cosine_affinity(mu, lambda2), cosine_affinity(relations, temperature=lambda2),
                    reduction="batchmean")
