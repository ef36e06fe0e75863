"""L2P (CVPR 2022) on ReID (docs/methods/l2p.md): a frozen ViT/CLIP tower, a pool of key-matched input
prompts, the base ID + triplet losses minus the key pull. Carried: the model (prompts, keys, heads)."""
from __future__ import annotations

from torch import nn

from pad_bench.registry import register_strategy
from pad_bench.training.prompt_strategy import PromptStrategy

from .prompts import L2PPrompts


@register_strategy("l2p")
class L2P(PromptStrategy):
    prompt_term_weights = {"key_pull": ("pull_constraint_coeff", -1.0)}

    @classmethod
    def make_prompts(cls, sizes: dict[str, int], cfg: dict) -> nn.Module:
        hp = cfg["strategy"]
        return L2PPrompts(**sizes, pool_size=hp["pool_size"], length=hp["prompt_length"],
                          top_k=hp["top_k"], layers=hp["prompt_layers"], batchwise=hp["batchwise_prompt"])
