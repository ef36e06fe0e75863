"""DAFC's text-driven prompts (docs/methods/dafc.md#prompts), as released in reid/models/Prompt.py."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def key_match(query: Tensor, attention: Tensor, keys: Tensor) -> Tensor:
    """Σ_k cos(query ⊙ A_k, K_k) per image: query (B, D), attention and keys (pool, D) -> (B,).

    Prompt.py:189-194 computes the (B, pool) matches and then contracts them with the einsum
    'bk,bld->bld', which sums over the pool: each image gets one scalar."""
    matched = torch.einsum("bd,kd->bkd", query, attention)
    return torch.einsum("bkd,kd->bk", F.normalize(matched, dim=2), F.normalize(keys, dim=1)).sum(dim=1)


def select_prompts(scale: Tensor, text_prompts: Tensor, top: int) -> Tensor:
    """The `top` largest values per channel of scale·text_prompts over the prompt axis, in
    descending order: scale (B,), text_prompts (B, n, D) -> (B, top, D) (Prompt.py:198-201). The first
    half are the block's key prefix, the second half its value prefix."""
    return torch.topk(scale[:, None, None] * text_prompts, top, dim=1).values
