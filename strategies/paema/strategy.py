"""PAEMA (IJCV 2024, docs/methods/paema.md): a fully fine-tuned ImageNet ViT-B/16 with one general
key/value prompt per block, CE + soft-margin triplet only, and after every step t ≥ 2 a fusion with the
previous model weighted by how much the general prompt changed. Carried: the fused model only."""
from __future__ import annotations

import math

import torch
from torch import nn

from pad_bench.errors import UserError
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.plugins.old_model import OldModelPlugin
from pad_bench.training.schedules import per_domain_list, resolve_milestones_by_dataset

from .plugins.prompt_fusion import PromptAlphaFusionPlugin
from .prompt import GeneralPromptBackbone

FIRST_CLASSIFIER_INITS = ("kaiming", "normal")


@register_strategy("paema")
class PAEMA(ReIDStrategy):
    """The base losses on the ViT's pre-BN CLS token; SGD for the network, Adam for the prompt."""

    plugin_order = (OldModelPlugin, PromptAlphaFusionPlugin)  # the old model exists before fusion reads it

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        old = OldModelPlugin()
        self.fusion = PromptAlphaFusionPlugin(old=old)
        super().__init__(cfg=cfg, plugins=[old, self.fusion, *(plugins or [])], **kwargs)
        if self.hp["paema_first_classifier_init"] not in FIRST_CLASSIFIER_INITS:
            raise UserError(f"strategy.paema_first_classifier_init must be one of {', '.join(FIRST_CLASSIFIER_INITS)}, "
                            f"got {self.hp['paema_first_classifier_init']!r}")

    @classmethod
    def finalize_config(cls, cfg: dict) -> None:
        """Per-dataset milestones (MSMT17: [20, 30]) become a per-domain list; as released, they apply
        after the first domain only, which keeps the first-domain milestones whatever the dataset."""
        hp = cfg["strategy"]
        given = hp["milestones"]
        resolve_milestones_by_dataset(cfg)
        if hp["milestones"] is not given:  # turned into one list per domain
            hp["milestones"][0] = per_domain_list(given, 0)

    @classmethod
    def build_model(cls, cfg: dict, bench) -> nn.Module:
        net = super().build_model(cfg, bench)
        net.backbone = GeneralPromptBackbone(net.backbone, cfg["strategy"]["paema_prompt_length"])
        return net

    def adapt_model(self) -> None:
        """The growth rule; the very first classifier is Kaiming-normal (fan-out) as released, unless
        paema_first_classifier_init is 'normal' (the harness's N(0, 0.001))."""
        if self.model.num_classes > 0 or self.hp["paema_first_classifier_init"] == "normal":
            return super().adapt_model()
        n = self.num_classes_per_exp[self.exp_index]
        rows = {tap: torch.randn(n, c.in_features) * math.sqrt(2.0 / n) for tap, c in self.model.classifiers.items()}
        self.model.grow_classifier(n, rows)

    def param_groups(self) -> list[dict]:
        hp = self.hp
        prompt = self.model.backbone.prompt
        rest = [p for p in self.model.parameters() if p.requires_grad and p is not prompt]
        return [{"name": "network", "params": rest, "lr": hp["lr"], "weight_decay": hp["weight_decay"],
                 "optimizer": hp["optimizer"]},
                {"name": "prompt", "params": [prompt] if prompt.requires_grad else [], "lr": hp["prompt_lr"],
                 "weight_decay": 0.0, "optimizer": hp["prompt_optimizer"]}]

    def param_report(self) -> dict:
        """The base report plus the fusion α of the experience just trained (None for the first)."""
        return {**super().param_report(), "fusion_alpha": self.fusion.last_alpha}
