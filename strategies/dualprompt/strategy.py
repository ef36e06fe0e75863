"""DualPrompt (ECCV 2022) on ReID (docs/methods/dualprompt.md): a frozen ViT/CLIP tower, a shared G-prompt
and per-domain E-prompts as key/value prefixes, the base losses minus the key pull. Carried: the model."""
from __future__ import annotations

from typing import Literal

from torch import nn

from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.prompt_strategy import PromptParams, PromptStrategy

from .prompts import DualPrompts


class DualPromptParams(PromptParams):
    """JH-LEE-KR/dualprompt-pytorch configs/cifar100_dualprompt.py (docs/methods/dualprompt.md gives each line)."""

    g_prompt_length: int = hp(5, "G-prompt length per block: as many key as value tokens", ge=1)
    g_prompt_layers: list[int] = hp([0, 1], "blocks with the G-prompt (g_prompt_layer_idx)", ge=0)
    e_prompt_layers: list[int] = hp([2, 3, 4], "blocks with the E-prompt (e_prompt_layer_idx)", ge=0)
    pool_size: int = hp(10, "E-prompts (and keys) in the pool; one per domain is trained (size)", ge=1)
    e_prompt_length: int = hp(5, "E-prompt length per block: as many key as value tokens", ge=1)
    top_k: int = hp(1, "E-prompts picked at test time by key match", ge=1)
    batchwise_prompt: Literal["train", "always", "never"] = hp(
        "train", "batch-wise pick; training uses the domain's own E-prompt")
    pull_constraint_coeff: float = hp(1.0, "weight of the key pull subtracted from the loss", ge=0)


@register_strategy("dualprompt")
class DualPrompt(PromptStrategy):
    Params = DualPromptParams
    prompt_term_weights = {"key_pull": ("pull_constraint_coeff", -1.0)}

    @classmethod
    def make_prompts(cls, sizes: dict[str, int], cfg: dict) -> nn.Module:
        hp = cls.Params(cfg["strategy"])
        return DualPrompts(**sizes, pool_size=hp.pool_size, g_length=hp.g_prompt_length,
                           e_length=hp.e_prompt_length, g_layers=hp.g_prompt_layers,
                           e_layers=hp.e_prompt_layers, top_k=hp.top_k, batchwise=hp.batchwise_prompt,
                           n_tasks=len(cfg["benchmark"]["domains"]))
