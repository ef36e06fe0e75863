"""CODA-Prompt (CVPR 2023) on ReID (docs/methods/coda-prompt.md): a frozen ViT/CLIP tower, attention-weighted
prompt components as key/value prefixes, the base losses plus the orthogonality penalty. Carried: the model."""
from __future__ import annotations

from torch import nn

from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.prompt_strategy import PromptParams, PromptStrategy

from .prompts import CodaPrompts


class CodaPromptParams(PromptParams):
    """GT-RIPL/CODA-Prompt models/zoo.py, configs/imnet-r_prompt.yaml (docs/methods/coda-prompt.md gives each line)."""

    pool_size: int = hp(100, "components per block; pool_size // domains of them per domain", ge=1)
    prompt_length: int = hp(8, "tokens per component: half key, half value", ge=2)
    prompt_layers: list[int] = hp([0, 1, 2, 3, 4], "blocks with prompts (zoo.py:46)", ge=0)
    ortho_mu: float = hp(0.0, "weight of the orthogonality penalty", ge=0)
    lr_scaling = "none"
    lr_schedule = "cosine"


@register_strategy("coda_prompt")
class CodaPrompt(PromptStrategy):
    Params = CodaPromptParams
    prompt_term_weights = {"ortho": ("ortho_mu", 1.0)}

    @classmethod
    def make_prompts(cls, sizes: dict[str, int], cfg: dict) -> nn.Module:
        hp = cls.Params(cfg["strategy"])
        return CodaPrompts(**sizes, pool_size=hp.pool_size, length=hp.prompt_length,
                           layers=hp.prompt_layers, n_tasks=len(cfg["benchmark"]["domains"]),
                           ortho=hp.ortho_mu > 0)
