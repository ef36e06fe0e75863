"""The ReID strategy every method builds on: an Avalanche `SupervisedTemplate` with P×K batches,
a growing global classifier, per-experience optimizers and LR schedules, the configured precision
(`train.precision`: autocast on CUDA, a gradient scaler for fp16),
explicit carried state, parameter accounting and state-dict checkpoints.

A method subclasses `ReIDStrategy` (or composes plugins onto it) and overrides a few hooks:
  finalize_config(cfg)         -> resolve presets/switches before config.yaml is written (classmethod)
  build_model(cfg, bench)      -> the nn.Module to train (classmethod; bench may be None on export)
  export_state(model)          -> the inference weights `pad-bench export` writes (classmethod)
  adapt_model()                -> grow/reset heads at the start of an experience (before the optimizer)
  configure_trainable()        -> set requires_grad for this experience
  param_groups()               -> optimizer groups [{"name", "params", "lr", "weight_decay"}]; a group
                                  may name its own "optimizer" (adam | sgd), else strategy.optimizer
  compute_loss(out, labels)    -> the per-iteration loss; record its terms with record_losses()
  lr_factor(epoch)             -> the LR multiplier for a 0-based epoch of the current experience
  start_experience(index)      -> set the experience's index and budget (call super), before any
                                  plugin callback of the experience
  end_experience()             -> once the experience's epochs are done, before the plugins'
                                  after_training_exp (e.g. store what the next experience needs)
and lists what it carries between experiences in `carried` (attribute names; plugins declare
theirs the same way). Those objects are checkpointed and counted in summary.json (carried.py).

Plugin state contract (for resume): a plugin lists in `carried` the attributes that live from one
experience to the next, and implements `state_dict() -> dict` / `load_state_dict(state)` for state
that lives inside an experience (e.g. PAD's EMA teacher). Values are tensors, numbers, strings and
lists/dicts of them (checkpoints load with weights_only=True). Everything else a plugin holds must be
rebuilt by its experience set-up hooks: resuming inside an experience replays that set-up from the
previous boundary checkpoint (same model, same RNG state) and then loads the saved state on top.

What each experience ran with (domain, epochs, milestones, LR per optimizer group, batch, erasing,
KD, trainable set) is read back from the strategy once the experience is set up
(`experience_settings`, summary.json["experiences"]); `plan()` sets every experience up the same way
without data or training (`pad-bench run --dry-run`). A method adds its own keys by overriding
`experience_settings` and, when it sizes the model outside adapt_model, `plan_experience`.

Plugin contract: a behaviour is an Avalanche plugin; one that adds loss terms subclasses
`training.plugins.loss.LossPlugin` and returns them. A method whose plugins must run in a given
order lists their classes in `plugin_order`; the constructor checks the order.
"""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Mapping

import torch
from avalanche.training.templates import SupervisedTemplate
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..config import per_domain
from ..data.loading import loader_workers
from ..data.sampler import make_batch_sampler
from ..errors import UserError
from ..metrics.lifelong import UNION_LABEL
from .carried import carried_bytes, carried_owners, carried_values, pack_carried, unpack_carried
from .checkpoint import load_model_state, model_state, rng_state, set_rng_state
from .features import extract_features, normalized_class_means
from .losses import reid_losses
from .optim import build_optimizer, scaled, step
from .params import ReIDParams
from .plugins.old_model import OldModelPlugin
from .schedules import per_domain_list, warmup_multistep

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # train.precision -> autocast dtype; fp32: none


class ReIDStrategy(SupervisedTemplate):
    """Base strategy: CLIP-ReID-style ID + triplet losses on a growing classifier (fine-tune)."""

    #: the method's declared hyperparameters (`strategy.*`), read as `self.hp.<name>`
    Params: ClassVar[type[ReIDParams]] = ReIDParams
    #: attribute names (on the strategy) carried from one experience to the next, besides the model
    carried: ClassVar[tuple[str, ...]] = ()
    #: True for a method trained once on every domain merged into one experience (labelled UNION_LABEL)
    sees_union: ClassVar[bool] = False
    #: plugin classes whose instances must appear in this order in the strategy's plugins
    plugin_order: ClassVar[tuple[type, ...]] = ()
    #: the cached data path's device-side transforms (pad_bench.data.device_input), set by the runner
    device_input = None

    def __init__(self, *, model: nn.Module, cfg: dict, num_classes: list[int], class_offsets: list[int],
                 device: str = "cpu", plugins: list | None = None, evaluator=None):
        self.cfg = cfg
        self.hp = self.Params(cfg["strategy"])
        self.train_cfg: dict[str, Any] = cfg["train"]
        self.num_classes_per_exp = list(num_classes)
        self.class_offsets = list(class_offsets)
        self.seed = int(cfg["seed"])
        self.exp_index = -1
        self.epoch = 0
        self.loss_terms: dict[str, float] = {}
        self.images_seen = 0
        self.param_history: list[dict] = []
        self.experience_history: list[dict] = []
        self.planning = False  # True inside plan(): no data, so no data-derived initialisation
        self._compiled: nn.Module | None = None
        self.base_lrs: list[float] = []
        self.checkpoint_every = int(self.train_cfg.get("checkpoint_every_epochs", 0))
        self.epoch_checkpoint = None  # callable(strategy), set by the runner: writes a mid-experience checkpoint
        self.resume_state: dict | None = None  # a mid_experience_state() to continue from in the next train()
        kwargs = {"evaluator": evaluator} if evaluator is not None else {}
        super().__init__(
            model=model,
            optimizer=torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0),  # replaced per experience
            criterion=nn.Identity(),  # unused: criterion() is overridden
            train_mb_size=int(per_domain(self.train_cfg["batch_p"], 0)) * self.train_cfg["batch_k"],
            train_epochs=1,
            eval_mb_size=self.train_cfg["eval_batch_size"],
            device=device,
            plugins=list(plugins or []),
            eval_every=-1,
            **kwargs,
        )
        check_plugin_order(type(self).__name__, self.plugins, self.plugin_order)
        # autocast and the scaler are CUDA features here: a CPU run is fp32 whatever the config says
        self.precision = str(self.train_cfg.get("precision", "fp32")) if self.device.type == "cuda" else "fp32"
        self.scaler = self.grad_scaler()

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def finalize_config(cls, cfg: dict) -> None:
        """Resolve method switches in place (e.g. presets) so config.yaml records concrete values."""

    @classmethod
    def extra_pk_batches(cls, cfg: dict) -> list[tuple[tuple[str, str], int, int]]:
        """P×K batches the method draws besides train.batch_p × train.batch_k, as ((P key, K key), P, K):
        checked against every training domain before a run starts."""
        return []

    @classmethod
    def export_state(cls, model: nn.Module) -> dict:
        """What deployment needs: the image side only (`pad-bench export`)."""
        return model.image_encoder_state_dict()

    @classmethod
    def build_model(cls, cfg: dict, bench) -> nn.Module:
        from ..models import create_model, model_options

        m = cfg["model"]
        return create_model(m["name"], num_classes=0, weights=m.get("weights"),
                            image_size=tuple(cfg["protocol"]["image_size"]),
                            text_tower=bool(m.get("text_tower", False)), **model_options(m),
                            test_feature=m.get("test_feature", "pre_bn"), test_normalize=m.get("test_normalize", True))

    # ---- hooks for methods --------------------------------------------------------------
    def adapt_model(self) -> None:
        """Grow the global classifier by this experience's identities (docs/methods/finetune.md#classifier-growth)."""
        n_new = self.num_classes_per_exp[self.exp_index]
        init = None
        if (self.model.num_classes > 0 and not self.planning
                and self.hp.classifier_init in ("class_means", "test_feature_means")):
            init = self.class_mean_rows()
        self.model.grow_classifier(n_new, init)

    def configure_trainable(self) -> None:
        """Default: train everything the model does not freeze itself."""

    def param_groups(self) -> list[dict]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return [{"name": "all", "params": params, "lr": self.hp.lr, "weight_decay": self.hp.weight_decay}]

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        """ID loss on every head tap + batch-hard triplet on every triplet tap."""
        hp = self.hp
        ce, tri = reid_losses(out, labels, hp, self.model.backbone.triplet_taps)
        self.record_losses({"id": ce, "tri": tri})
        return hp.id_weight * ce + hp.triplet_weight * tri

    def end_experience(self) -> None:
        """Called once the experience's epochs are done, before the plugins' after_training_exp."""

    def lr_factor(self, epoch: int) -> float:
        """Warmup-multistep for the 0-based epoch of the current experience. `schedule_step`
        before_epoch (PAD's code) evaluates it one epoch ahead (first epoch at f + (1-f)/W, a
        milestone m decays epoch m-1); after_epoch (the LSTKC family's code) runs the first epoch
        at f and decays epoch m."""
        hp = self.hp
        ahead = {"before_epoch": 1, "after_epoch": 0}[hp.schedule_step]
        return warmup_multistep(epoch + ahead, per_domain_list(hp.milestones, self.exp_index),
                                warmup_epochs=int(hp.warmup_epochs),
                                warmup_factor=hp.warmup_factor, gamma=hp.gamma)

    def batch_p(self) -> int:
        """Identities per P×K batch in the current experience."""
        return int(per_domain(self.train_cfg["batch_p"], self.exp_index))

    @property
    def kd_active(self) -> bool:
        """Whether the current experience distils from an earlier model (the old-model methods, from step 2)."""
        return self.exp_index > 0 and any(isinstance(p, OldModelPlugin) for p in self.plugins)

    # ---- what ran: per-experience settings and the dry run ------------------------------
    def domain_name(self) -> str:
        return UNION_LABEL if self.sees_union else self.cfg["benchmark"]["domains"][self.exp_index]

    def experience_settings(self) -> dict:
        """The settings the current experience runs with, read from the strategy as set up (after
        the trainable set and the optimizer): summary.json["experiences"] and --dry-run rows."""
        bb = self.model.backbone
        image = bb.clip.visual if hasattr(bb, "clip") else bb
        flags = [p.requires_grad for p in image.parameters()]
        blocks = getattr(bb, "blocks", None)
        return {
            "domain": self.domain_name(),
            "position": self.exp_index,
            "epochs": self.train_epochs,
            "milestones": list(per_domain_list(self.hp.milestones, self.exp_index)),
            "schedule_step": self.hp.schedule_step,
            "lr": {g.get("name", str(i)): lr for i, (g, lr) in enumerate(zip(self.optimizer.param_groups,
                                                                               self.base_lrs))},
            "batch_p": self.batch_p(),
            "batch_k": self.train_cfg["batch_k"],
            "sampler": self.train_cfg["sampler"],
            "random_erasing": per_domain(self.train_cfg["random_erasing"], self.exp_index),
            "precision": self.precision,
            "kd": self.kd_active,
            "new_slots": None,
            "unfreeze": "full" if all(flags) else ("partial" if any(flags) else "none"),
            "trainable_blocks": None if blocks is None else
            [i for i, b in enumerate(blocks) if any(p.requires_grad for p in b.parameters())],
            "trainable_params": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
        }

    def start_experience(self, index: int) -> None:
        """Called when experience `index` starts (in training and in the dry run), before any plugin callback."""
        self.exp_index = index
        self.train_epochs = int(per_domain(self.train_cfg["epochs"], index))
        self.epoch = 0

    def plan_experience(self) -> None:
        """Size and freeze the model for the current experience as training does, without data."""
        self.adapt_model()
        self.configure_trainable()
        self.make_optimizer()

    def plan(self) -> list[dict]:
        """The dry run: every experience set up in training order, its settings; nothing trains.
        The model is left as after the last experience's set-up: build a fresh one to train."""
        self.planning = True
        try:
            rows = []
            for k in range(len(self.num_classes_per_exp)):
                self.start_experience(k)
                self.plan_experience()
                rows.append(self.experience_settings())
            return rows
        finally:
            self.planning = False

    # ---- helpers for methods ------------------------------------------------------------
    @property
    def local_labels(self) -> Tensor:
        """This experience's labels restarted at 0 (for heads rebuilt per domain)."""
        return self.mb_y - self.class_offsets[self.exp_index]

    def autocast(self):
        dtype = AUTOCAST_DTYPES.get(self.precision)
        return torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """A fresh gradient scaler under fp16 (whose gradients underflow without one), else None."""
        return torch.amp.GradScaler("cuda") if self.precision == "fp16" else None

    def backward(self):
        scaled(self.loss, self.scaler).backward(retain_graph=self.retain_graph)

    def optimizer_step(self):
        step(self.optimizer, self.scaler)

    def extract(self, dataset, model: nn.Module | None = None, keys: tuple[str, ...] = ("embedding",)) -> dict:
        """Eval-mode features of a dataset (eval transforms) plus labels and camera ids:
        {key: (N, d), "labels": (N,), "camids": (N,)}."""
        prepare = self.device_input.eval_batch if self.device_input is not None else None
        return extract_features(model or self.model, dataset, keys=keys, batch_size=self.eval_mb_size,
                                num_workers=loader_workers(self.train_cfg), device=self.device,
                                autocast=self.autocast, prepare=prepare)

    def class_mean_rows(self) -> dict[str, Tensor]:
        """L2-normalised class means of this experience's head-tap features, one row per new class,
        from the current model in eval mode. classifier_init 'class_means': means of the L2-normalised
        pre-BN features (the LSTKC/DKP code); 'test_feature_means': means of the un-normalised features
        the test feature is made of, pre- or post-BN as model.test_feature says (PAEMA's and LSTKC++'s
        code, which average what their models return in eval mode)."""
        taps = tuple(self.model.classifiers.keys())
        raw = self.hp.classifier_init == "test_feature_means"
        keys = tuple(f"bn.{t}" if raw and self.model.test_feature == "post_bn" else t for t in taps)
        feats = self.extract(self.experience.dataset, keys=keys)
        labels = feats["labels"] - self.class_offsets[self.exp_index]
        n = self.num_classes_per_exp[self.exp_index]
        return {t: normalized_class_means(feats[key], labels, n, normalize=not raw) for t, key in zip(taps, keys)}

    def record_losses(self, terms: Mapping[str, Tensor | float]) -> None:
        """Record unweighted loss terms of the current step by name (progress bar, TensorBoard, losses.csv)."""
        self.loss_terms.update({k: float(v.detach() if isinstance(v, Tensor) else v) for k, v in terms.items()})

    def log_losses(self, phase: str, total: Tensor, epoch: int | None = None) -> None:
        """Hand the current step's total and terms to the run's loss logs (a step outside Avalanche's
        iteration loop, e.g. PAD's stage 1, calls this itself)."""
        from .loss_log import LossLog

        for p in self.plugins:
            if isinstance(p, LossLog):
                p.log(self, phase, total, epoch)

    # ---- Avalanche overrides ------------------------------------------------------------
    def _before_training_exp(self, **kwargs):
        self.start_experience(self.experience.current_experience)
        super()._before_training_exp(**kwargs)  # data, heads, trainable set, optimizer, plugins
        self.experience_history.append(self.experience_settings())

    def make_train_dataloader(self, num_workers: int = 0, **kwargs):
        labels = [int(y) for y in self.adapted_dataset.targets]
        self.id_sampler = make_batch_sampler(self.train_cfg["sampler"], labels, list(self.adapted_dataset.camid),
                                             self.batch_p(), self.train_cfg["batch_k"],
                                             seed=self.seed * 1000 + self.exp_index)
        self.dataloader = DataLoader(self.adapted_dataset, batch_sampler=self.id_sampler,
                                     num_workers=loader_workers(self.train_cfg),
                                     pin_memory=self.device.type == "cuda")

    def _unpack_minibatch(self):
        super()._unpack_minibatch()
        if self.device_input is not None:  # cached data path: uint8 images, transformed here
            x, domains = self.mbatch[0], self.mbatch[4]
            self.mbatch[0] = (self.device_input.train_batch(x, domains, self.images_seen) if self.is_training
                              else self.device_input.eval_batch(x))

    def model_adaptation(self, model=None):
        if not self.is_training:  # eval also calls this: never grow heads on test identities
            return self.model.to(self.device)  # Avalanche's eval() does not move the model
        self.adapt_model()
        self.configure_trainable()
        return self.model.to(self.device)

    def make_optimizer(self, **kwargs):
        groups = [g for g in self.param_groups() if g["params"]]
        if not groups:
            raise UserError(f"strategy '{self.hp.name}' has no trainable parameters in experience {self.exp_index}")
        for g in groups:
            if not g["lr"] >= 0:  # torch checks only the default rate, not each group's
                raise UserError(f"strategy '{self.hp.name}': learning rate {g['lr']} of parameter group "
                                f"'{g.get('name', '?')}' must be >= 0")
        self.base_lrs = [g["lr"] for g in groups]
        self.optimizer = build_optimizer(groups, self.hp.optimizer, self.hp.momentum)
        self.scaler = self.grad_scaler()  # one per experience, as its optimizer
        self.optimized_param_id = True  # tells Avalanche an optimizer exists; we rebuild it ourselves

    def _before_training_epoch(self, **kwargs):
        self.id_sampler.set_epoch(self.epoch)
        factor = self.lr_factor(self.epoch)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * factor
        super()._before_training_epoch(**kwargs)

    def _after_training_epoch(self, **kwargs):
        super()._after_training_epoch(**kwargs)
        self.epoch += 1
        every = self.checkpoint_every
        if every > 0 and self.epoch % every == 0 and self.epoch < self.train_epochs and self.epoch_checkpoint:
            self.epoch_checkpoint(self)

    def _train_exp(self, experience, eval_streams=None, **kwargs):
        """Avalanche's epoch loop, starting at `self.epoch` (non-zero when resumed inside the experience)."""
        if self.resume_state is not None:
            self.load_mid_experience_state(self.resume_state)
            self.resume_state = None
        while self.epoch < self.train_epochs:
            self._before_training_epoch(**kwargs)
            if self._stop_training:
                self._stop_training = False
                break
            self.training_epoch(**kwargs)
            self._after_training_epoch(**kwargs)

    @property
    def step_model(self) -> nn.Module:
        """What the training forward calls: the model, or with train.compile its torch.compile wrapper
        (built once; it shares the model's parameters and recompiles when a head changes size)."""
        if not (self.train_cfg.get("compile") and self.is_training):
            return self.model
        if self._compiled is None:
            self._compiled = torch.compile(self.model)
        return self._compiled

    def forward(self):
        with self.autocast():
            return self.step_model(self.mb_x)

    def criterion(self):
        if not self.is_training:
            return torch.zeros((), device=self.device)
        return self.compute_loss(self.mb_output, self.mb_y)

    def _before_training_iteration(self, **kwargs):
        self.loss_terms = {}
        super()._before_training_iteration(**kwargs)

    def _after_training_iteration(self, **kwargs):
        self.images_seen += len(self.mb_y)
        super()._after_training_iteration(**kwargs)

    def _after_training_exp(self, **kwargs):
        self.end_experience()
        super()._after_training_exp(**kwargs)
        self.param_history.append(self.param_report())

    # ---- carried state, accounting, checkpoints -----------------------------------------
    def carried_owners(self) -> list[tuple[str, Any]]:
        """(prefix, owner) of everything that declares `carried`: the strategy and its plugins."""
        return carried_owners(self, self.plugins)

    def resumable_plugins(self) -> dict[str, Any]:
        """Plugins that implement the state contract's state_dict()/load_state_dict(), by class name."""
        return {type(p).__name__: p for p in self.plugins if callable(getattr(p, "state_dict", None))}

    def carried_state(self) -> dict[str, Any]:
        return carried_values(self.carried_owners())

    def param_report(self) -> dict:
        params = list(self.model.parameters())
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        carried = carried_bytes(self.carried_owners(), self.model)
        return {
            "experience": self.exp_index,
            "total_params": total,
            "trainable_params": trainable,
            "trainable_ratio": trainable / max(total, 1),
            "carried_bytes": carried,
            "carried_total_bytes": sum(carried.values()),
        }

    def checkpoint_state(self) -> dict:
        carried = pack_carried(self.carried_owners())
        return {"model": model_state(self.model), "carried": carried, "exp_index": self.exp_index,
                "images_seen": self.images_seen, "param_history": self.param_history,
                "experience_history": self.experience_history,
                "plugins": {k: p.state_dict() for k, p in self.resumable_plugins().items()}}

    def load_checkpoint_state(self, state: dict, source: str = "checkpoint") -> None:
        load_model_state(self.model, state["model"], source)
        unpack_carried(self.carried_owners(), state["carried"])
        self.exp_index = state["exp_index"]
        self.images_seen = state["images_seen"]
        self.param_history = state["param_history"]
        self.experience_history = state.get("experience_history", [])
        self._load_plugin_states(state.get("plugins", {}))

    def _load_plugin_states(self, states: dict) -> None:
        for name, plugin in self.resumable_plugins().items():
            plugin.load_state_dict(states.get(name, {}))

    def mid_experience_state(self) -> dict:
        """Everything that changes inside an experience, after `self.epoch` epochs of it."""
        return {"model": model_state(self.model), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "images_seen": self.images_seen, "rng": rng_state(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else {},
                "plugins": {k: p.state_dict() for k, p in self.resumable_plugins().items()}}

    def load_mid_experience_state(self, state: dict) -> None:
        """Continue after the set-up of the experience was replayed: weights, optimizer, epoch, plugins, RNG."""
        load_model_state(self.model, state["model"], "the mid-experience checkpoint")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.images_seen = state["epoch"], state["images_seen"]
        self._load_plugin_states(state["plugins"])
        set_rng_state(state["rng"])


def check_plugin_order(owner: str, plugins: list, order: tuple[type, ...]) -> None:
    """Raise if instances of the classes in `order` appear among `plugins` out of that order."""
    present = [type(p) for p in plugins if type(p) in order]
    if present != sorted(present, key=order.index):
        raise ValueError(f"{owner}: plugins {', '.join(c.__name__ for c in present)} are out of order; "
                         f"{owner}.plugin_order requires {', '.join(c.__name__ for c in order)}")
