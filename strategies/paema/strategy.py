"""PAEMA (IJCV 2024, docs/methods/paema.md): a fully fine-tuned ImageNet ViT-B/16 with one general
key/value prompt per block, CE + soft-margin triplet only, and after every step t ≥ 2 a fusion with the
previous model weighted by how much the general prompt changed. Carried: the fused model only."""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from pad_bench.hparams import hp
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.params import ReIDParams
from pad_bench.training.plugins.old_model import OldModelPlugin

from .plugins.prompt_fusion import PromptAlphaFusionPlugin
from .prompt import GeneralPromptBackbone

class PAEMAParams(ReIDParams):
    prompt_optimizer: Literal["adam", "sgd"] = hp("adam", "optimizer of the general prompt (no weight decay)")
    prompt_lr: float = hp(0.005, "LR of the general prompt", ge=0)
    paema_prompt_length: int = hp(10, "prompt tokens per block: half keys, half values (even)", ge=2)
    paema_first_classifier_init: Literal["kaiming", "normal"] = hp(
        "kaiming", "first domain's classifier: Kaiming-normal fan-out (released) or N(0, 0.001)")


@register_strategy("paema")
class PAEMA(ReIDStrategy):
    """The base losses on the ViT's pre-BN CLS token; SGD for the network, Adam for the prompt."""

    plugin_order = (OldModelPlugin, PromptAlphaFusionPlugin)  # the old model exists before fusion reads it
    Params = PAEMAParams

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        old = OldModelPlugin()
        self.fusion = PromptAlphaFusionPlugin(old=old)
        super().__init__(cfg=cfg, plugins=[old, self.fusion, *(plugins or [])], **kwargs)

    @classmethod
    def build_model(cls, cfg: dict, bench) -> nn.Module:
        net = super().build_model(cfg, bench)
        net.backbone = GeneralPromptBackbone(net.backbone, cls.Params(cfg["strategy"]).paema_prompt_length)
        return net

    def adapt_model(self) -> None:
        """The growth rule; the very first classifier is Kaiming-normal (fan-out) as released, unless
        paema_first_classifier_init is 'normal' (the harness's N(0, 0.001))."""
        if self.model.num_classes > 0 or self.hp.paema_first_classifier_init == "normal":
            return super().adapt_model()
        n = self.num_classes_per_exp[self.exp_index]
        rows = {tap: torch.randn(n, c.in_features) * math.sqrt(2.0 / n) for tap, c in self.model.classifiers.items()}
        self.model.grow_classifier(n, rows)

    def param_groups(self) -> list[dict]:
        hp = self.hp
        prompt = self.model.backbone.prompt
        rest = [p for p in self.model.parameters() if p.requires_grad and p is not prompt]
        return [{"name": "network", "params": rest, "lr": hp.lr, "weight_decay": hp.weight_decay,
                 "optimizer": hp.optimizer},
                {"name": "prompt", "params": [prompt] if prompt.requires_grad else [], "lr": hp.prompt_lr,
                 "weight_decay": 0.0, "optimizer": hp.prompt_optimizer}]

    def param_report(self) -> dict:
        """The base report plus the fusion α of the experience just trained (None for the first)."""
        return {**super().param_report(), "fusion_alpha": self.fusion.last_alpha}
