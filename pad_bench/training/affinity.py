"""Row-softmax cosine affinities, the relation that LSTKC and DKP distil and compare."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def cosine_affinity(x: Tensor, y: Tensor | None = None, temperature: float = 0.1) -> Tensor:
    """softmax_row(cos(x, y) / temperature): (N, d), (M, d) -> (N, M); y defaults to x."""
    x = F.normalize(x.float(), dim=1)
    y = x if y is None else F.normalize(y.float(), dim=1)
    return F.softmax(x @ y.t() / temperature, dim=1)


def log_cosine_affinity(x: Tensor, temperature: float = 0.1) -> Tensor:
    """log of cosine_affinity(x, x), computed stably (for KL inputs)."""
    x = F.normalize(x.float(), dim=1)
    return F.log_softmax(x @ x.t() / temperature, dim=1)
