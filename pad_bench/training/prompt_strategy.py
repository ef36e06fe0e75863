"""The template of the prompt methods (L2P, DualPrompt, CODA-Prompt; docs/adding-a-method.md): a frozen
ViT or CLIP tower with a method's prompts (pad_bench.models.prompts.PromptedBackbone), the base ReID
losses plus the method's weighted auxiliary terms, and a per-domain `start_task` hook of the prompts."""
from __future__ import annotations

import math
from typing import ClassVar, Literal

from torch import Tensor, nn

from ..hparams import hp
from .base import ReIDStrategy
from .params import ReIDParams


class PromptParams(ReIDParams):
    """The keys every prompt method has: the references' LR rules."""

    lr_scaling: Literal["batch", "none"] = hp("batch", "batch: LR x P*K/256 (the references' linear scaling) | none")
    lr_schedule: Literal["constant", "cosine", "warmup_multistep"] = hp(
        "constant", "the references' constant or cosine rule, or the harness's warmup_multistep")


class PromptStrategy(ReIDStrategy):
    """A prompt method implements `make_prompts` and names the weight of each auxiliary loss term."""

    Params = PromptParams

    #: auxiliary term of out["prompt_terms"] -> (strategy key of its weight, sign it enters the loss with)
    prompt_term_weights: ClassVar[dict[str, tuple[str, float]]] = {}

    @classmethod
    def make_prompts(cls, sizes: dict[str, int], cfg: dict) -> nn.Module:
        """The method's prompt module for a tower of `sizes` (pad_bench.models.prompts.tower_sizes):
        `module(query, training) -> LayerPrompter`. Raises UserError for settings the tower cannot take."""
        raise NotImplementedError

    @classmethod
    def finalize_config(cls, cfg: dict) -> None:
        """Refuse settings the tower cannot take before the run directory is written (the prompt module
        checks them: built once here on the tower's sizes, then dropped)."""
        cls.make_prompts(cls.tower_sizes(cfg), cfg)

    @staticmethod
    def tower_sizes(cfg: dict) -> dict[str, int]:
        from ..models import model_config
        from ..models.prompts import tower_sizes

        return tower_sizes(model_config(cfg["model"]["name"]))

    @classmethod
    def build_model(cls, cfg: dict, bench) -> nn.Module:
        from ..models.prompts import PromptedBackbone

        net = super().build_model(cfg, bench)
        net.backbone = PromptedBackbone(net.backbone, cls.make_prompts(cls.tower_sizes(cfg), cfg))
        return net

    def adapt_model(self) -> None:
        """The prompts learn which domain is current (before the classifier's class means are read)."""
        start = getattr(self.model.backbone.method, "start_task", None)
        if start is not None:
            start(self.exp_index)
        super().adapt_model()

    def param_groups(self) -> list[dict]:
        """One group of everything trainable (prompts, keys, BNNecks, classifiers) at strategy.lr, times
        batch/256 with lr_scaling 'batch' (the references' linear scaling rule)."""
        groups = super().param_groups()
        if self.hp.lr_scaling == "batch":
            for g in groups:
                g["lr"] *= self.batch_p() * self.train_cfg["batch_k"] / 256
        return groups

    def lr_factor(self, epoch: int) -> float:
        """constant (L2P, DualPrompt); cosine, CODA-Prompt's cos(99π·e / (200·(E − 1))) for epoch e of E
        (utils/schedulers.py), which ends near 0.016 rather than 0; or the harness's warmup_multistep."""
        schedule = self.hp.lr_schedule
        if schedule == "constant":
            return 1.0
        if schedule == "cosine":
            return math.cos(99 * math.pi * epoch / (200 * (self.train_epochs - 1))) if self.train_epochs > 1 else 1.0
        return super().lr_factor(epoch)

    def experience_settings(self) -> dict:
        """The base settings, with the LR schedule named and no milestones unless it uses them."""
        row = {**super().experience_settings(), "lr_schedule": self.hp.lr_schedule}
        if self.hp.lr_schedule != "warmup_multistep":
            row["milestones"] = []
        return row

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        loss = super().compute_loss(out, labels)
        terms = out["prompt_terms"]
        self.record_losses(terms)
        for name, term in terms.items():
            key, sign = self.prompt_term_weights[name]
            loss = loss + sign * getattr(self.hp, key) * term
        return loss
