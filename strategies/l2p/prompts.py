"""L2P's prompts: one pool of key-matched prompts inserted at the tower's input (docs/methods/l2p.md)."""
from __future__ import annotations

from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.models.attention import KeptPrompts
from pad_bench.models.prompts import BATCHWISE, KeyedPromptPool, LayerPrompter, check_layers, key_pull


class L2PPrompts(nn.Module):
    """The top_k prompts whose keys best match the query, inserted after CLS before each block of
    `layers` (L2P: block 0) and kept to the end; in training the key pull is returned as 'key_pull'."""

    def __init__(self, *, depth: int, dim: int, key_dim: int, pool_size: int, length: int, top_k: int,
                 layers, batchwise: str):
        super().__init__()
        if batchwise not in BATCHWISE:
            raise UserError(f"strategy.batchwise_prompt must be one of {', '.join(BATCHWISE)}, got {batchwise!r}")
        self.layers = check_layers("prompt_layers", layers, depth)
        self.pool = KeyedPromptPool(pool_size=pool_size, tokens=length, dim=dim, key_dim=key_dim, layers=self.layers,
                                    top_k=top_k)
        self.batchwise = batchwise

    def forward(self, query: Tensor, training: bool) -> LayerPrompter:
        batchwise = self.batchwise == "always" or (self.batchwise == "train" and training)
        idx = self.pool.select(query, batchwise)
        terms = {"key_pull": key_pull(query, self.pool.key, idx)} if training else {}
        return LayerPrompter(lambda i: KeptPrompts(self.pool.tokens(i, idx)) if i in self.layers else None, terms)
