"""DualPrompt's prompts: a shared G-prompt in the first blocks, one E-prompt per domain in the next ones,
both as key/value prefixes (docs/methods/dualprompt.md)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.models.attention import KVPrefix
from pad_bench.models.prompts import BATCHWISE, KeyedPromptPool, LayerPrompter, check_layers, key_pull


class DualPrompts(nn.Module):
    """G-prompt (len(g_layers), 2·g_length, dim) and an E-prompt pool of 2·e_length tokens per block, U(-1, 1).
    Training uses the current domain's E-prompt (its index is the domain's position) and pulls its key to
    the query ('key_pull'); evaluation picks the top_k E-prompts by key match over the whole pool."""

    def __init__(self, *, depth: int, dim: int, key_dim: int, pool_size: int, g_length: int, e_length: int,
                 g_layers, e_layers, top_k: int, batchwise: str, n_tasks: int):
        super().__init__()
        if batchwise not in BATCHWISE:
            raise UserError(f"strategy.batchwise_prompt must be one of {', '.join(BATCHWISE)}, got {batchwise!r}")
        self.g_layers = check_layers("g_prompt_layers", g_layers, depth)
        self.e_layers = check_layers("e_prompt_layers", e_layers, depth)
        if pool_size < n_tasks:
            raise UserError(f"DualPrompt gives every domain its own E-prompt, but strategy.pool_size is {pool_size} "
                            f"for {n_tasks} domains; raise it to at least {n_tasks}")
        if set(self.g_layers) & set(self.e_layers):
            raise UserError(f"strategy.g_prompt_layers {list(self.g_layers)} and e_prompt_layers "
                            f"{list(self.e_layers)} share blocks; give each block one kind of prompt")
        self.g_prompt = nn.Parameter(torch.empty(len(self.g_layers), 2 * g_length, dim).uniform_(-1, 1))
        self.pool = KeyedPromptPool(pool_size=pool_size, tokens=2 * e_length, dim=dim, key_dim=key_dim,
                                    layers=self.e_layers, top_k=top_k)
        self.batchwise = batchwise
        self.register_buffer("task", torch.zeros((), dtype=torch.long))

    def start_task(self, task: int) -> None:
        self.task.fill_(task)

    def forward(self, query: Tensor, training: bool) -> LayerPrompter:
        b = query.shape[0]
        if training:
            idx = self.task.expand(b, 1)
        else:
            idx = self.pool.select(query, self.batchwise == "always")
        terms = {"key_pull": key_pull(query, self.pool.key, idx)} if training else {}

        def make(i: int):
            if i in self.g_layers:
                return KVPrefix(self.g_prompt[self.g_layers.index(i)].expand(b, -1, -1))
            if i in self.e_layers:
                return KVPrefix(self.pool.tokens(i, idx))
            return None

        return LayerPrompter(make, terms)
