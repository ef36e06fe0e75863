"""PAD's hyperparameters (docs/methods/pad.md lists each with its source). A switch left null follows
`preset` (the components) or `faithful_to` (the readings); finalize_config records the resolved value."""
from __future__ import annotations

from typing import Literal

from pad_bench.hparams import hp
from pad_bench.training.params import ReIDParams

Switch = bool | None


class PADParams(ReIDParams):
    # ---- components and readings (docs/methods/pad.md#ablation-rows) ----------------------------
    preset: Literal["S0", "S1", "S2", "S3", "S4", "S5"] = hp("S5", "ablation row; S5 = full PAD")
    freeze: Switch = hp(None, "selective unfreezing after the first domain (null: the preset's)")
    va_prompt: Switch = hp(None, "the VA-prompt pool (null: the preset's)")
    texkd: Switch = hp(None, "weak text distillation (null: the preset's)")
    viskd: Switch = hp(None, "EMA-teacher visual distillation (null: the preset's)")
    faithful_to: Literal["paper", "code"] = hp("paper", "which reading fills the null switches below")
    texkd_teacher: Literal["global_bank", "init_prompts", "off"] | None = hp(
        None, "TEXKD's teacher: global_bank (paper), init_prompts (code) or off")
    va_key_learning: Literal["pull_constraint", "none"] | None = hp(
        None, "VA keys learn DualPrompt-style (paper) or stay random (code)")
    eval_active_slots: Literal["trained_only", "all_36"] | None = hp(
        None, "slots a test image may select: trained ones (paper) or the whole pool (code)")
    first_domain_by: Literal["position", "name"] | None = hp(
        None, "where the tables' `first` entries go: position 0 (paper) or first_domain_name (code)")
    first_domain_name: str = hp("market1501", "the dataset that gets the `first` entries when first_domain_by=name")
    bnneck_bias: Literal["frozen", "trainable"] | None = hp(None, "BNNeck biases: frozen (paper) or trainable (code)")
    logitkd_bank: Literal["current", "all_seen"] | None = hp(None, "text bank of the logit KD: the current domain or all seen")
    featkd_reduction: Literal["mean", "sum"] | None = hp(None, "reduction of the feature KD over dimensions")
    unfreeze_last_n: int = hp(4, "image blocks trained after the first domain (with freeze)", ge=0)
    train_ln_post_proj: bool = hp(False, "also train the final LayerNorm and projection after the first domain")
    # ---- per-domain settings (docs/methods/pad.md#optimisation) ----------------------------------
    stage1_epochs: int = hp({"first": 20, "msmt17": 15, "cuhk03": 10, "default": 12},
                            "stage-1 (TA-prompt) epochs", ge=0, per_domain=True)
    stage1_batch: int = hp({"cuhk03": 48, "default": 64}, "stage-1 batch size", ge=1, per_domain=True)
    prompt_lr: float = hp({"first": 2.0e-3, "default": 5.0e-3}, "LR of the prompt group (stage 1 and 2)",
                          ge=0, per_domain=True)
    kd: bool = hp({"first": False, "default": True}, "distil in this domain (never at position 0)", per_domain=True)
    new_slots: int = hp({"cuhk03": 4, "default": 8}, "VA-pool slots added per domain (the last takes the rest)",
                        ge=0, per_domain=True)
    stage1_lr_min: float = hp(1.0e-6, "stage-1 cosine schedule's final LR", ge=0)
    stage1_warmup_lr: float = hp(1.0e-5, "stage-1 warm-up start LR", ge=0)
    stage1_warmup_epochs: int = hp(3, "stage-1 warm-up epochs", ge=0)
    # ---- losses (docs/methods/pad.md#losses) ------------------------------------------------------
    i2t_weight: float = hp(1.0, "weight of the image-to-text ID loss", ge=0)
    va_pull_weight: float = hp(1.0, "weight of the VA key-pull term", ge=0)
    texkd_weight: float = hp(0.5, "weight of TEXKD", ge=0)
    texkd_temperature: float = hp(0.07, "TEXKD softmax temperature", gt=0)
    texkd_logit_scale: float = hp(7.0, "TEXKD logit scale", gt=0)
    texkd_extra_classes: int = hp(256, "extra text-bank rows TEXKD samples", ge=0)
    featkd_weight: float = hp(0.5, "weight of the EMA feature KD", ge=0)
    logitkd_weight: float = hp(0.5, "weight of the EMA logit KD", ge=0)
    logitkd_temperature: float = hp(4.0, "logit KD temperature", gt=0)
    ema_alpha: float = hp(0.997, "EMA teacher momentum", ge=0, le=1)
    # ---- VA-prompt pool (docs/methods/pad.md#prompts) ---------------------------------------------
    va_pool_size: int = hp(36, "slots in the VA-prompt pool", ge=1)
    va_prompt_len: int = hp(6, "tokens per E-prompt slot", ge=1)
    va_g_len: int = hp(6, "tokens of the G-prompt", ge=1)
    va_top_k: int = hp(4, "slots an image selects", ge=1)
