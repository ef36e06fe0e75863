"""CODA-Prompt's prompts: attention-weighted sums of prompt components as key/value prefixes
(docs/methods/coda-prompt.md)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pad_bench.models.attention import KVPrefix
from pad_bench.models.prompts import CodaPool, LayerPrompter, check_layers, component_weights, ortho_penalty


class CodaPrompts(nn.Module):
    """Per block of `layers`, the prompt Σ_m cos(q ⊙ A_m, K_m) P_m; in training with ortho_mu > 0 the
    orthogonality penalty of K, A and P (flattened), summed over blocks, is returned as 'ortho'."""

    def __init__(self, *, depth: int, dim: int, key_dim: int, pool_size: int, length: int, layers,
                 n_tasks: int, ortho: bool):
        super().__init__()
        self.layers = check_layers("prompt_layers", layers, depth)
        self.pool = CodaPool(pool_size=pool_size, length=length, dim=dim, key_dim=key_dim, layers=self.layers,
                             n_tasks=n_tasks)
        self.ortho = ortho

    def start_task(self, task: int) -> None:
        self.pool.start_task(task)

    def forward(self, query: Tensor, training: bool) -> LayerPrompter:
        terms: dict[str, Tensor] = {}

        def make(i: int):
            if i not in self.layers:
                return None
            key, attn, prompt = self.pool.components(i, training)
            if training and self.ortho:
                term = ortho_penalty(key) + ortho_penalty(attn) + ortho_penalty(prompt.flatten(1))
                terms["ortho"] = terms["ortho"] + term if "ortho" in terms else term
            return KVPrefix(torch.einsum("bm,mld->bld", component_weights(query, key, attn), prompt))

        return LayerPrompter(make, terms)
