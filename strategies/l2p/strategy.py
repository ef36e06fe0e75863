"""L2P (CVPR 2022) on ReID (docs/methods/l2p.md): a frozen ViT/CLIP tower, a pool of key-matched input
prompts, the base ID + triplet losses minus the key pull. Carried: the model (prompts, keys, heads)."""
from __future__ import annotations

from typing import Literal

from torch import nn

from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.prompt_strategy import PromptParams, PromptStrategy

from .prompts import L2PPrompts


class L2PParams(PromptParams):
    """JH-LEE-KR/l2p-pytorch configs/cifar100_l2p.py (docs/methods/l2p.md gives each line)."""

    pool_size: int = hp(10, "M prompts (and keys) in the pool (size)", ge=1)
    prompt_length: int = hp(5, "tokens per prompt (length)", ge=1)
    top_k: int = hp(5, "prompts picked per image by key match (top_k)", ge=1)
    prompt_layers: list[int] = hp([0], "blocks before which the picked prompts are inserted (input only, as L2P)", ge=0)
    batchwise_prompt: Literal["train", "always", "never"] = hp(
        "train", "L2P's batch-wise majority pick: in training only, always or never")
    pull_constraint_coeff: float = hp(0.1, "weight of the key pull subtracted from the loss", ge=0)


@register_strategy("l2p")
class L2P(PromptStrategy):
    Params = L2PParams
    prompt_term_weights = {"key_pull": ("pull_constraint_coeff", -1.0)}

    @classmethod
    def make_prompts(cls, sizes: dict[str, int], cfg: dict) -> nn.Module:
        hp = cls.Params(cfg["strategy"])
        return L2PPrompts(**sizes, pool_size=hp.pool_size, length=hp.prompt_length,
                          top_k=hp.top_k, layers=hp.prompt_layers, batchwise=hp.batchwise_prompt)
