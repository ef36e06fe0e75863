"""CODA-Prompt (CVPR 2023) on ReID (docs/methods/coda-prompt.md): a frozen ViT/CLIP tower, attention-weighted
prompt components as key/value prefixes, the base losses plus the orthogonality penalty. Carried: the model."""
from __future__ import annotations

from torch import nn

from pad_bench.registry import register_strategy
from pad_bench.training.prompt_strategy import PromptStrategy

from .prompts import CodaPrompts


@register_strategy("coda_prompt")
class CodaPrompt(PromptStrategy):
    prompt_term_weights = {"ortho": ("ortho_mu", 1.0)}

    @classmethod
    def make_prompts(cls, sizes: dict[str, int], cfg: dict) -> nn.Module:
        hp = cfg["strategy"]
        return CodaPrompts(**sizes, pool_size=hp["pool_size"], length=hp["prompt_length"],
                           layers=hp["prompt_layers"], n_tasks=len(cfg["benchmark"]["domains"]),
                           ortho=hp["ortho_mu"] > 0)
