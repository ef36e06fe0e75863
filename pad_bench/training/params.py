"""The hyperparameters every method inherits: the optimizer, the LR schedule and the ReID losses of
the base strategy (docs/methods/finetune.md). Defaults are the CLIP-ReID recipe's; recipes and a
method's YAML override them."""
from __future__ import annotations

from typing import Literal

from ..hparams import HParams, hp


class ReIDParams(HParams):
    """`strategy.*` keys read by ReIDStrategy, its losses and its schedule."""

    name: str = hp("", "the strategy YAML's name (set by the harness)")
    method: str = hp("", "the method folder that runs it (set by the harness from the YAML's folder)")
    optimizer: Literal["adam", "sgd"] = hp("adam", "optimizer of every parameter group that names none")
    lr: float = hp(5.0e-6, "learning rate of the model's parameters", ge=0)
    weight_decay: float = hp(1.0e-4, "L2 weight decay", ge=0)
    momentum: float = hp(0.9, "SGD momentum", ge=0, le=1)
    warmup_epochs: int = hp(10, "linear LR warm-up epochs per experience", ge=0)
    warmup_factor: float = hp(0.1, "LR factor at the start of the warm-up", gt=0, le=1)
    gamma: float = hp(0.1, "LR decay at each milestone", gt=0, le=1)
    milestones: list[int] = hp([], "epochs (0-based, per experience) at which the LR decays by gamma",
                               ge=0, per_domain=True)
    schedule_step: Literal["before_epoch", "after_epoch"] = hp(
        "before_epoch", "when the LR factor is set: before each epoch (one epoch ahead) or after it")
    label_smoothing: float = hp(0.1, "label smoothing of the ID loss", ge=0, lt=1)
    id_weight: float = hp(0.25, "weight of the ID (cross-entropy) loss", ge=0)
    triplet_weight: float = hp(1.0, "weight of the batch-hard triplet loss", ge=0)
    triplet_margin: float | None = hp(0.3, "triplet margin; null = soft margin log(1 + exp(d_ap - d_an))", ge=0)
    triplet_normalize: bool = hp(False, "triplet on L2-normalised features")
    classifier_init: Literal["class_means", "test_feature_means", "random"] = hp(
        "class_means", "how new classifier rows start (docs/methods/finetune.md#classifier-growth)")
