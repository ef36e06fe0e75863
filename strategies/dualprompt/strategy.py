"""DualPrompt (ECCV 2022) on ReID (docs/methods/dualprompt.md): a frozen ViT/CLIP tower, a shared G-prompt
and per-domain E-prompts as key/value prefixes, the base losses minus the key pull. Carried: the model."""
from __future__ import annotations

from torch import nn

from pad_bench.registry import register_strategy
from pad_bench.training.prompt_strategy import PromptStrategy

from .prompts import DualPrompts


@register_strategy("dualprompt")
class DualPrompt(PromptStrategy):
    prompt_term_weights = {"key_pull": ("pull_constraint_coeff", -1.0)}

    @classmethod
    def make_prompts(cls, sizes: dict[str, int], cfg: dict) -> nn.Module:
        hp = cfg["strategy"]
        return DualPrompts(**sizes, pool_size=hp["pool_size"], g_length=hp["g_prompt_length"],
                           e_length=hp["e_prompt_length"], g_layers=hp["g_prompt_layers"],
                           e_layers=hp["e_prompt_layers"], top_k=hp["top_k"], batchwise=hp["batchwise_prompt"],
                           n_tasks=len(cfg["benchmark"]["domains"]))
