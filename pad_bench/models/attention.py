"""Multi-head self-attention on a packed q/k/v projection, with optional key/value prefix prompts;
shared by the block loops of the ViT (timm) and CLIP (open_clip) image towers.

Key/value prefix prompts (prefix tuning, PAEMA's general prompt): P prompt tokens go through the
block's q/k/v projection together with the (normed) tokens; the keys of the first P/2 are appended to
the tokens' keys and the values of the last P/2 to their values. Only the tokens query, so the output
has one row per token: the prompts add nothing to the sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

PerHead = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class KVPrefix:
    """What a prompter returns for a block to take `tokens` (B, P, D), P even, as key/value prefix
    prompts rather than as tokens inserted into the sequence."""

    tokens: Tensor


@dataclass(frozen=True)
class KeptPrompts:
    """What a prompter returns for `tokens` (B, P, D) to be inserted after the CLS token before block i
    and kept in the sequence through every later block (L2P's prompt tuning at the input). The taps
    read the CLS token only, so the prompts never reach an output directly."""

    tokens: Tensor


def insert_after_cls(x: Tensor, tokens: Tensor) -> Tensor:
    """x (B, N, D) with prompt tokens (B, P, D) between its CLS token and the rest."""
    return torch.cat([x[:, :1], tokens.to(x.dtype), x[:, 1:]], dim=1)


def packed_attention(x: Tensor, qkv: Callable[[Tensor], Tensor], heads: int, prefix: Tensor | None = None, *,
                     q_norm: PerHead | None = None, k_norm: PerHead | None = None,
                     dropout_p: float = 0.0) -> Tensor:
    """Attention of x (B, N, C) before the output projection, (B, N, C). `qkv` maps (B, L, C) to
    (B, L, 3C), queries, keys and values stacked (timm's Attention.qkv, open_clip's in_proj);
    `prefix` (B, P, C) are key/value prefix prompts; q_norm / k_norm act per head (timm's qk-norm)."""
    b, n, c = x.shape
    tokens = x
    if prefix is not None:
        if prefix.shape[1] % 2:
            raise ValueError(f"key/value prefix prompts come in pairs (P/2 keys, P/2 values); got P={prefix.shape[1]}")
        tokens = torch.cat([x, prefix.to(x.dtype)], dim=1)
    q, k, v = qkv(tokens).reshape(b, tokens.shape[1], 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    if prefix is not None:
        half = prefix.shape[1] // 2
        q, k, v = q[:, :, :n], k[:, :, :n + half], torch.cat([v[:, :, :n], v[:, :, n + half:]], dim=2)
    if q_norm is not None:
        q = q_norm(q)
    if k_norm is not None:
        k = k_norm(k)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    return out.transpose(1, 2).reshape(b, n, c)
