"""DKP's distribution maths (docs/methods/dkp.md): set triplet, class prototypes, the DKT loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pad_bench.errors import UserError
from pad_bench.training.affinity import cosine_affinity, log_cosine_affinity

from .uncertainty import gaussian_samples


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
