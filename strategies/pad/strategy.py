"""PAD (CVPR 2026): CLIP-ReID per domain with VA-prompts on the image side, fresh TA-prompts and
classifiers per domain, selective unfreezing, TEXKD and EMA-VISKD. docs/methods/pad.md describes the
method, every hyperparameter and its source.

Per experience (= domain): new E-slots (PromptGrowthPlugin, before the optimizer) -> fresh classifiers
and TA-prompts -> trainable set and stage-2 optimizer -> EMA teacher of the image side (EMAVisKDPlugin)
-> stage 1 (cached `proj` features, only the TA-prompts train, + TEXKD via TexKDPlugin) -> the fixed
text bank -> stage 2 (Avalanche's epoch loop: L_base + the KD terms). Evaluation uses the image
encoder only, with the test-time slot rule (`eval_active_slots`); every training-time forward
(student, EMA teacher, stage-1 cache) uses the training rule (see VAPromptPool).

Two readings, chosen by `strategy.faithful_to` (each switch left null follows it; config.yaml records
the resolved values):
  paper (default): the text teacher is the frozen prompts at initialisation plus a *global* bank of
    earlier domains' trained identity features (`texkd_teacher: global_bank`); VA keys learn
    DualPrompt-style (`va_key_learning: pull_constraint`); tests use trained slots only; the
    first-domain settings (the tables' `first` entries: longer schedule, prompt LR 2e-3, KD off)
    go to position 0 (`first_domain_by: position`); BNNeck biases stay frozen.
  code (zu-zi/PAD ca2b557): the text teacher is the initial prompts only (`init_prompts`), keys stay
    random (`none`), tests pick among every slot of the pool (`all_36`), the `first` entries go to
    the dataset named `first_domain_name` (`first_domain_by: name`, as the released per-domain
    config keyed by dataset name: under order 2 Market, third, gets them), BNNeck biases train.
    The `code` profile of pad.yaml adds the data-protocol rows (all IDs, detected CUHK03, ...).
In both, position 0 trains without KD and with the whole image tower; every later position gets the
partial unfreeze. Dataset-specific entries (MSMT17's schedule; CUHK03's batch, erasing, slots)
follow the dataset in both. Ablation rows S0-S5 of docs/methods/pad.md#ablation-rows: `strategy.preset`
(or strategies/pad/pad-s0.yaml ... pad-s5.yaml).

PAD's plugins read a PADContext (context.py: model, a PADNet with `text_features`, `text_bank` and
`image_teacher`; seed, autocast, exp_index, kd_active, text_bank) that the strategy keeps current;
those taking part in stage 1 are Stage1Plugins (plugins/stage1.py). Loss terms go back as return values (LossPlugin, Stage1Plugin.stage1_loss).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor

from pad_bench.config import per_domain, resolve_dataset_tables
from pad_bench.errors import UserError
from pad_bench.metrics.diagnostics import RoutingRecord, TextAnchors
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.losses import id_loss, reid_losses
from pad_bench.training.optim import scaled, step

from .context import PADContext
from .params import PADParams
from .distill import symmetric_supcon
from .plugins.ema_viskd import EMAVisKDPlugin
from .plugins.prompt_growth import PromptGrowthPlugin, domain_slot_counts
from .plugins.stage1 import Stage1Plugin
from .plugins.texkd import TexKDPlugin
from .prompts import PADNet, VAPromptPool
from .schedule import stage1_lr

COMPONENTS = ("freeze", "va_prompt", "texkd", "viskd")
PRESETS = {  # the ablation rows (docs/methods/pad.md#ablation-rows): (freeze, va_prompt, texkd, viskd)
    "S0": (False, False, False, False),
    "S1": (True, False, False, False),
    "S2": (True, True, False, False),
    "S3": (True, True, True, False),
    "S4": (True, True, False, True),
    "S5": (True, True, True, True),
}
FAITHFUL = {  # the switches where the paper and the released code differ (docs/methods/pad.md)
    "paper": {"texkd_teacher": "global_bank", "va_key_learning": "pull_constraint",
              "eval_active_slots": "trained_only", "first_domain_by": "position", "bnneck_bias": "frozen",
              "logitkd_bank": "current", "featkd_reduction": "mean"},
    "code": {"texkd_teacher": "init_prompts", "va_key_learning": "none", "eval_active_slots": "all_36",
             "first_domain_by": "name", "bnneck_bias": "trainable", "logitkd_bank": "current",
             "featkd_reduction": "mean"},
}
PROMPT_PARAMS = ("va_prompt", "g_prompt", "e_prompt", "e_key", "prompt_learner")
HEAD_PARAMS = ("reid.classifiers.", "reid.necks.")


def resolve_switches(hp: dict) -> None:
    """Components from `preset`, method switches from `faithful_to`, for every switch left null
    (the declared types in params.py have checked every value already)."""
    for name, on in zip(COMPONENTS, PRESETS[hp["preset"]]):
        hp[name] = on if hp[name] is None else hp[name]
    for key, value in FAITHFUL[hp["faithful_to"]].items():
        hp[key] = value if hp[key] is None else hp[key]


def resolve_domain_tables(cfg: dict) -> None:
    """Turn the per-dataset tables into lists by position: the `first` entries go to position 0
    (first_domain_by: position) or to the domain named first_domain_name (name). Position 0 never
    distils: there is no teacher before the first domain (the released code forces it too)."""
    hp = cfg["strategy"]
    names = list(cfg["benchmark"]["domains"])
    first = 0
    if hp["first_domain_by"] == "name":
        if hp["first_domain_name"] not in names:
            raise UserError(f"strategy.first_domain_by is name but no training domain is called "
                            f"{hp['first_domain_name']!r}; set strategy.first_domain_name to one of "
                            f"{', '.join(names)} or use first_domain_by=position")
        first = names.index(hp["first_domain_name"])
    resolve_dataset_tables(cfg, first_index=first)
    hp["kd"] = [False] + [bool(per_domain(hp["kd"], i)) for i in range(1, len(names))]


def param_group(name: str) -> str:
    """The optimizer group of a parameter name (docs/methods/pad.md#optimisation): prompt, head or backbone."""
    if any(key in name for key in PROMPT_PARAMS):
        return "prompt"
    return "head" if name.startswith(HEAD_PARAMS) else "backbone"


def pad_base_loss(out: dict, labels: Tensor, bank: Tensor, hp: PADParams,
                  triplet_taps: tuple[str, ...]) -> tuple[Tensor, dict[str, Tensor]]:
    """L_base (docs/methods/pad.md#losses) on domain-local labels, plus the VA key-pull term when `out` has one.

    Returns the loss and its unweighted terms."""
    ce, tri = reid_losses(out, labels, hp, triplet_taps)
    i2t = id_loss(out["proj"].float() @ bank.float().t(), labels, hp.label_smoothing)
    loss = hp.id_weight * ce + hp.triplet_weight * tri + hp.i2t_weight * i2t
    terms = {"id": ce, "tri": tri, "i2t": i2t}
    if "va_pull" in out:
        loss = loss + hp.va_pull_weight * out["va_pull"]
        terms["pull"] = out["va_pull"]
    return loss, terms


def pad_plugins(hp: PADParams, n_domains: int, ctx: PADContext) -> list:
    """The plugins the resolved switches ask for, in PAD.plugin_order."""
    plugins: list = []
    if hp.va_prompt:
        plugins.append(PromptGrowthPlugin(domain_slot_counts(hp.new_slots, n_domains, hp.va_pool_size),
                                          ctx=ctx))
    if hp.texkd and hp.texkd_teacher != "off":
        plugins.append(TexKDPlugin(ctx=ctx, teacher=hp.texkd_teacher, weight=hp.texkd_weight,
                                   temperature=hp.texkd_temperature, scale=hp.texkd_logit_scale,
                                   extra_classes=hp.texkd_extra_classes))
    if hp.viskd:
        plugins.append(EMAVisKDPlugin(ctx=ctx, alpha=hp.ema_alpha, feat_weight=hp.featkd_weight,
                                      logit_weight=hp.logitkd_weight, temperature=hp.logitkd_temperature,
                                      featkd_reduction=hp.featkd_reduction, bank=hp.logitkd_bank))
    return plugins


@register_strategy("pad")
class PAD(ReIDStrategy):
    """PAD as a ReIDStrategy: two stages per domain, plugins for prompt growth, TEXKD and EMA-VISKD."""

    # new slots exist before the EMA teacher copies the model; TEXKD's stage 1 comes before stage 2's KD
    plugin_order = (PromptGrowthPlugin, TexKDPlugin, EMAVisKDPlugin)
    Params = PADParams

    def __init__(self, *, model: PADNet, cfg: dict, num_classes: list[int], plugins: list | None = None, **kwargs):
        self.context = PADContext(model=model, seed=int(cfg["seed"]), autocast=self.autocast)
        own = pad_plugins(self.Params(cfg["strategy"]), len(num_classes), self.context)
        super().__init__(model=model, cfg=cfg, num_classes=num_classes, plugins=own + list(plugins or []), **kwargs)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def finalize_config(cls, cfg: dict) -> None:
        resolve_switches(cfg["strategy"])
        resolve_domain_tables(cfg)

    @classmethod
    def build_model(cls, cfg: dict, bench) -> PADNet:
        from pad_bench.models import create_model

        hp, m = cls.Params(cfg["strategy"]), cfg["model"]
        reid = create_model(m["name"], num_classes=0, weights=m.get("weights"),
                            image_size=tuple(cfg["protocol"]["image_size"]), text_tower=True,
                            bnneck_bias_trainable=hp.bnneck_bias == "trainable")
        pool = None
        if hp.va_prompt:
            pool = VAPromptPool(num_layers=len(reid.backbone.blocks), dim=reid.backbone.width,
                                pool_size=hp.va_pool_size, prompt_len=hp.va_prompt_len, g_len=hp.va_g_len,
                                top_k=hp.va_top_k, eval_active_slots=hp.eval_active_slots,
                                learn_keys=hp.va_key_learning == "pull_constraint")
        return PADNet(reid, pool)

    @property
    def kd_active(self) -> bool:
        """Whether distillation applies in the current domain (the resolved `kd` table; never at position 0)."""
        return self.exp_index > 0 and bool(per_domain(self.hp.kd, self.exp_index))

    @property
    def stage1_epochs(self) -> int:
        return int(per_domain(self.hp.stage1_epochs, self.exp_index))

    @property
    def stage1_batch(self) -> int:
        return int(per_domain(self.hp.stage1_batch, self.exp_index))

    # ---- ReIDStrategy hooks -------------------------------------------------------------------
    def start_experience(self, index: int) -> None:
        super().start_experience(index)
        self.context.exp_index, self.context.kd_active = index, self.kd_active

    def forward(self):
        """The student under the training slot rule; evaluation under the test-time rule (eval_active_slots)."""
        with self.autocast():
            return self.step_model(self.mb_x, slot_rule="train" if self.is_training else "test")

    def adapt_model(self) -> None:
        self.model.new_domain(self.num_classes_per_exp[self.exp_index])

    def configure_trainable(self) -> None:
        hp = self.hp
        self.model.set_trainable(full_backbone=not hp.freeze or self.exp_index == 0,
                                 last_n=hp.unfreeze_last_n, ln_post_proj=hp.train_ln_post_proj,
                                 neck_bias=hp.bnneck_bias == "trainable")

    def param_groups(self) -> list[dict]:
        hp = self.hp
        groups: dict[str, list] = {"prompt": [], "head": [], "backbone": []}
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                groups[param_group(name)].append(p)
        prompt_lr = float(per_domain(hp.prompt_lr, self.exp_index))
        return [{"name": "prompt", "params": groups["prompt"], "lr": prompt_lr, "weight_decay": 0.0}] + [
            {"name": g, "params": groups[g], "lr": hp.lr, "weight_decay": hp.weight_decay}
            for g in ("head", "backbone")]

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        loss, terms = pad_base_loss(out, self.local_labels, self.context.text_bank, self.hp,
                                    self.model.backbone.triplet_taps)
        self.record_losses(terms)
        return loss

    # ---- stage 1 ------------------------------------------------------------------------------
    def before_training_epochs(self) -> None:
        """Stage 1, once the slots, heads, trainable set, stage-2 optimizer and EMA teacher exist."""
        self.train_stage1()

    def train_stage1(self) -> None:
        """Train this domain's TA-prompts on cached image features (docs/methods/pad.md#per-domain-procedure), then fix the text bank."""
        hp = self.hp
        cache = self.extract(self.experience.dataset, keys=("proj",))
        feats, labels = cache["proj"], cache["labels"] - self.class_offsets[self.exp_index]
        ctx = self.model.prompt_learner.cls_ctx
        ctx.requires_grad_(True)
        base_lr = float(per_domain(hp.prompt_lr, self.exp_index))
        optimizer = torch.optim.Adam([ctx], lr=base_lr, weight_decay=0.0)
        epochs = self.stage1_epochs
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.exp_index)
        hooked = [p for p in self.plugins if isinstance(p, Stage1Plugin)]
        scaler = self.grad_scaler()  # stage 1's own, as in PAD's engine
        for p in hooked:
            p.start_stage1()
        for epoch in range(1, epochs + 1):
            for group in optimizer.param_groups:
                group["lr"] = stage1_lr(epoch, base_lr, epochs, lr_min=hp.stage1_lr_min,
                                        warmup_lr=hp.stage1_warmup_lr, warmup_epochs=hp.stage1_warmup_epochs)
            for idx in torch.randperm(len(labels), generator=generator).split(self.stage1_batch):
                idx = idx.to(feats.device)
                self.reset_losses()
                loss = self.stage1_loss(feats[idx], labels[idx], hooked)
                optimizer.zero_grad(set_to_none=True)
                scaled(loss, scaler).backward()
                step(optimizer, scaler)
                self.log_losses("stage1", loss, epoch)
        ctx.requires_grad_(False)
        self.reset_losses()
        with self.autocast():
            self.context.text_bank = self.model.text_bank()

    def stage1_loss(self, image: Tensor, labels: Tensor, hooked: list[Stage1Plugin]) -> Tensor:
        """Symmetric SupCon between cached image features and their identities' prompts, plus plugin terms."""
        with self.autocast():
            text = self.model.text_features(labels).float()
        loss = symmetric_supcon(image, text, labels)
        self.record_losses({"supcon": loss})
        for p in hooked:
            out = p.stage1_loss(image, labels)
            if out is not None:
                total, terms = out
                loss = loss + total
                self.record_losses(terms)
        return loss

    # ---- diagnostics hooks (docs/metrics.md#6-diagnostics) -------------------------------------
    def text_anchors(self) -> TextAnchors | None:
        """The TA-prompts' text features of the domain just trained, against the image `proj` feature."""
        if self.model.prompt_learner.num_classes < 2:
            return None
        with self.autocast():
            bank = self.model.text_bank()
        return TextAnchors("proj", bank.float(), self.class_offsets[self.exp_index])

    @contextmanager
    def routing_record(self) -> Iterator[RoutingRecord | None]:
        """While entered, the test-rule forwards record their VA-prompt picks (None without a pool)."""
        pool = self.model.va_prompt
        growth = next((p for p in self.plugins if isinstance(p, PromptGrowthPlugin)), None)
        if pool is None or growth is None:
            yield None
            return
        counts = [int(per_domain(growth.slots, i)) for i in range(len(self.num_classes_per_exp))]
        self.model.routing_record = RoutingRecord(pool.slot_owner(counts))
        try:
            yield self.model.routing_record
        finally:
            self.model.routing_record = None

    # ---- what ran ---------------------------------------------------------------------------------
    def plan_experience(self) -> None:
        for p in self.plugins:  # the new slots must exist before the trainable set (as in training)
            if isinstance(p, PromptGrowthPlugin):
                p.grow()
        super().plan_experience()

    def experience_settings(self) -> dict:
        """The base settings plus both stages (stage-1 epochs and batch) and this domain's new slots."""
        growth = next((p for p in self.plugins if isinstance(p, PromptGrowthPlugin)), None)
        return {**super().experience_settings(), "stage1_epochs": self.stage1_epochs,
                "stage1_batch": self.stage1_batch,
                "new_slots": None if growth is None else int(per_domain(growth.slots, self.exp_index))}

    # ---- accounting ---------------------------------------------------------------------------
    def param_report(self) -> dict:
        """The base report plus prompt storage (params, MiB at fp16) and the image-side trainable ratio."""
        report = super().param_report()
        storage = self.model.prompt_storage()
        n_prompt = sum(storage.values())
        image_total = sum(p.numel() for p in self.model.image_parameters())
        report.update(storage, prompt_params=n_prompt, prompt_mib_fp16=n_prompt * 2 / 2**20,
                      image_params=image_total,
                      trainable_ratio_image=report["trainable_params"] / max(image_total, 1))
        return report
