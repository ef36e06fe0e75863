"""DAFC (arXiv 2504.15041, docs/methods/dafc.md): a CLIP image encoder with text-driven key/value
prompts and a task-wise supervisor of experts. Step 1 trains on all experts' gated sum; each later
step first trains its own experts alone (`dafc_adapt_epochs`), then all of them with a consistency
loss that pulls its experts towards the earlier steps'. No exemplars; carried: the model and, for the
released evaluation (`dafc_eval_feature: with_previous`), the model as it entered the current step."""
from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.hparams import hp
from pad_bench.models.reid import ReIDNet
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.params import ReIDParams
from pad_bench.training.losses import batch_hard_triplet, id_loss

from .backbone import DAFCBackbone
from .tws import expert_consistency


class DAFCParams(ReIDParams):
    """LiuShiBen/DAFC at ef2f0c3 (docs/methods/dafc.md gives each source line and what is assumed)."""

    dafc_bias_lr_factor: float = hp(2.0, "bias LR = lr x this (make_optimizer.py:42)", ge=0)
    dafc_bias_weight_decay: float = hp(1.0e-4, "bias weight decay (make_optimizer.py:43)", ge=0)
    dafc_adapt_epochs: int = hp(30, "steps >= 2 train only their own experts for these first epochs", ge=0)
    dafc_consistency_weight: float = hp(1.0, "weight of the expert-consistency loss (trainer.py:116)", ge=0)
    dafc_experts_per_step: int = hp(5, "--num_task_experts: experts added per step", ge=1)
    dafc_expert_dropout: float = hp(0.1, "dropout inside each expert MLP (TWS.py:7)", ge=0, lt=1)
    dafc_text_prompts: int = hp(20, "linear text-prompt generators (vit_pytorch.py:593)", ge=1)
    dafc_pool_size: int = hp(128, "prompt keys per block (prompt_param[0])", ge=1)
    dafc_top_prompts: int = hp(10, "top values per channel, half keys half values (prompt_param[1])", ge=2)
    dafc_description: str = hp("A photo of a person.", "stands in for the attribute captioner's sentence")
    dafc_train_image_encoder: bool = hp(False, "assumed false (prompt tuning); true trains the CLIP image tower too")
    dafc_freeze_old_experts: bool = hp(False, "the released code never freezes experts; true freezes earlier steps'")
    dafc_score_embedding: bool = hp(True, "the released CLIP forward's score embedding (clip/model.py:266-271)")
    dafc_eval_feature: Literal["with_previous", "current"] = hp(
        "with_previous", "with_previous: the test feature of the model concatenated with that of the model as it "
        "entered the step, as evaluate.py reports (FSC); current: the model's own")


@register_strategy("dafc")
class DAFC(ReIDStrategy):
    """CE (label smoothing) + batch-hard triplet on 'fin' or, early in steps ≥ 2, on 'adapt'."""

    Params = DAFCParams
    carried = ("previous_state",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.previous_state: dict[str, Tensor] | None = None  # no classifier rows: only features are needed
        self._previous: tuple[int, nn.Module] | None = None  # (id of the state it holds, the model)

    @classmethod
    def build_model(cls, cfg: dict, bench) -> nn.Module:
        hp = cls.Params(cfg["strategy"])
        net = super().build_model(cfg, bench)
        backbone = DAFCBackbone(net.backbone, steps=len(cfg["benchmark"]["domains"]),
                                    experts_per_step=hp.dafc_experts_per_step, text_prompts=hp.dafc_text_prompts,
                                    pool=hp.dafc_pool_size, top=hp.dafc_top_prompts,
                                    description=hp.dafc_description, dropout=hp.dafc_expert_dropout,
                                    score_embedding=hp.dafc_score_embedding)
        # one BNNeck (its bias frozen, bottleneck_fin) and one classifier on 'fin' (vit_pytorch.py:549-557)
        return ReIDNet(backbone, image_size=net.image_size, spec=net.spec, test_feature=net.test_feature,
                       test_normalize=net.test_normalize)

    @classmethod
    def finalize_config(cls, cfg: dict) -> None:
        if not cfg["model"].get("text_tower"):
            raise UserError("DAFC's text prompts need the CLIP text tower: set model.text_tower=true")

    def adapt_model(self) -> None:
        self.model.backbone.step = self.exp_index
        if self.hp.dafc_eval_feature == "with_previous" and self.exp_index > 0:
            self.previous_state = {k: t.detach().clone() for k, t in self.model.state_dict().items()
                                   if not k.startswith("classifiers.")}
        super().adapt_model()

    def forward(self):
        """In evaluation with `dafc_eval_feature: with_previous` (from the second step on): the test
        features of the model and of the model as it entered the step, concatenated before the one
        L2 normalisation, as evaluate.py with eval_func(old_model=...) (my_tools.py:136-164)."""
        out = super().forward()
        if self.is_training or self.previous_state is None:
            return out
        with torch.no_grad(), self.autocast():
            old = self.previous_model()(self.mb_x)
        net = self.model
        both = torch.cat([net.unnormalized_embedding(out), net.unnormalized_embedding(old)], dim=1)
        return {**out, "embedding": F.normalize(both, dim=1) if net.test_normalize else both}

    def previous_model(self) -> nn.Module:
        """The model as it entered the current step (built once per step from `previous_state`)."""
        if self._previous is None or self._previous[0] != id(self.previous_state):
            model = copy.deepcopy(self.model).eval().requires_grad_(False)
            model.load_state_dict(self.previous_state, strict=False)
            self._previous = (id(self.previous_state), model)
        return self._previous[1]

    def configure_trainable(self) -> None:
        """The image encoder frozen unless dafc_train_image_encoder; the text tower always frozen;
        with dafc_freeze_old_experts, the experts of earlier steps frozen too."""
        bb = self.model.backbone
        bb.trunk.requires_grad_(False)
        if self.hp.dafc_train_image_encoder:
            bb.trunk.clip.visual.requires_grad_(True)
        n = bb.experts_per_step * self.exp_index
        for i, expert in enumerate(bb.tws.experts):
            expert.requires_grad_(not (self.hp.dafc_freeze_old_experts and i < n))

    def param_groups(self) -> list[dict]:
        """Biases at dafc_bias_lr_factor × lr with dafc_bias_weight_decay (make_optimizer.py:28-46)."""
        hp = self.hp
        named = [(k, p) for k, p in self.model.named_parameters() if p.requires_grad]
        return [{"name": "weights", "params": [p for k, p in named if "bias" not in k], "lr": hp.lr,
                 "weight_decay": hp.weight_decay},
                {"name": "biases", "params": [p for k, p in named if "bias" in k],
                 "lr": hp.lr * hp.dafc_bias_lr_factor, "weight_decay": hp.dafc_bias_weight_decay}]

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        hp = self.hp
        adapting = self.exp_index > 0 and self.epoch < hp.dafc_adapt_epochs
        tap = "adapt" if adapting else "fin"
        logits = self.model.classifiers["fin"](self.model.necks["fin"](out["adapt"])) if adapting else out["logits"]["fin"]
        ce = id_loss(logits, labels, hp.label_smoothing)
        tri = batch_hard_triplet(out[tap], labels, hp.triplet_margin, hp.triplet_normalize)
        terms = {"id": ce, "tri": tri}
        total = hp.id_weight * ce + hp.triplet_weight * tri
        if self.exp_index > 0 and not adapting:
            terms["consistency"] = expert_consistency(out["experts"], self.exp_index, hp.dafc_experts_per_step)
            total = total + hp.dafc_consistency_weight * terms["consistency"]
        self.record_losses(terms)
        return total
