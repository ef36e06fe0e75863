"""The ReID strategy every method builds on: P×K batches, a growing global classifier,
per-experience optimizers and LR schedules, the configured precision (`train.precision`: autocast
on CUDA, a gradient scaler for fp16), explicit carried state, parameter accounting and state-dict
checkpoints. It is an Avalanche `SupervisedTemplate` through one adapter (avalanche_adapter.py, the
only module that overrides Avalanche's private methods); the dry-run reporting lives in reporting.py
and checkpoint/resume state in strategy_state.py.

Hooks: a method subclasses `ReIDStrategy` and overrides only these (tests/test_hooks.py holds every
method under strategies/ to this list), in the order a run calls them, the last four aside:
  finalize_config(cfg)         classmethod: resolve presets/switches in cfg before config.yaml is written
  extra_pk_batches(cfg)        classmethod: P×K batches drawn besides train.batch_p × batch_k, as
                               ((P key, K key), P, K), checked against every training domain up front
  build_model(cfg, bench)      classmethod: the nn.Module to train (bench may be None on export)
  export_state(model)          classmethod: the inference weights `pad-bench export` writes
  start_experience(index)      the experience's index and budget are set (call super), before any
                               plugin callback of the experience
  adapt_model()                grow/reset heads at the start of an experience (before the optimizer)
  configure_trainable()        set requires_grad for this experience
  param_groups()               optimizer groups [{"name", "params", "lr", "weight_decay"}]; a group
                               may name its own "optimizer" (adam | sgd), else strategy.optimizer
  experience_settings()        the current experience's settings as set up (summary.json, --dry-run
                               rows): extend the dict with the method's own keys (call super)
  before_training_epochs()     the experience is set up (data, model, optimizer, the plugins'
                               before_training_exp) and its first epoch not yet run: e.g. a stage
                               of its own before the epoch loop (PAD's stage 1)
  lr_factor(epoch)             the LR multiplier for a 0-based epoch of the current experience
  forward()                    the model's output on the current batch (`mb_x`), under autocast()
  compute_loss(out, labels)    the per-iteration loss; record its terms with record_losses()
  end_experience()             once the experience's epochs are done, before the plugins'
                               after_training_exp (e.g. store what the next experience needs)
  param_report()               parameter accounting after an experience (call super and extend)
  kd_active                    property: whether the current experience distils from an earlier model
  plan_experience()            the dry run's set-up of one experience, without data: override when
                               the model is sized outside adapt_model (call super)
  text_anchors()               diagnostics (docs/metrics.md): the text anchors of the identities just
                               trained, for the alignment figures; None (the default) without a text side
  routing_record()             diagnostics: a context manager in which test forwards record their prompt
                               slots, for the routing figures; yields None (the default) without a pool

Declarations (class attributes): `Params` (the method's hyperparameters, read as `self.hp.<name>`),
`carried` (attribute names kept from one experience to the next; plugins declare theirs the same
way: checkpointed and counted in summary.json, carried.py), `sees_union` (trained once on all domains
merged), `plugin_order` (plugin classes that must appear in this order; the constructor checks it).
A plugin that distils from an earlier model declares `distils = True` (OldModelPlugin does): from the
second experience on, `kd_active` is then true.

Helpers a method calls: `self.hp`, `local_labels`, `autocast()`, `grad_scaler()`, `step_model`,
`extract(dataset)`, `class_mean_rows()`, `record_losses(terms)`, `reset_losses()`, `log_losses(...)`,
`batch_p()`, and the batch by field name: `mb_x`, `mb_y`, `mb_camid`, `mb_is_query`, `mb_domain`.
What the run provides (device-side transforms, a state to resume from, mid-experience checkpoints)
comes in once, at construction, as a `RunContext` (run_context.py).

Plugin state contract (for resume): a plugin lists in `carried` the attributes that live from one
experience to the next, and implements `state_dict() -> dict` / `load_state_dict(state)` for state
that lives inside an experience (e.g. PAD's EMA teacher). Values are tensors, numbers, strings and
lists/dicts of them (checkpoints load with weights_only=True). Everything else a plugin holds must be
rebuilt by its experience set-up hooks: resuming inside an experience replays that set-up from the
previous boundary checkpoint (same model, same RNG state) and then loads the saved state on top.

Plugin contract: a behaviour is an Avalanche plugin; one that adds loss terms subclasses
`training.plugins.loss.LossPlugin` and returns them.
"""
from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Mapping

import torch
from torch import Tensor, nn

from ..config import per_domain
from ..data.loading import loader_workers
from .avalanche_adapter import AvalancheAdapter
from .features import extract_features, normalized_class_means
from .losses import reid_losses
from .params import ReIDParams
from .reporting import ReportingMixin
from .run_context import RunContext
from .schedules import per_domain_list, warmup_multistep
from .strategy_state import StrategyStateMixin

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}  # train.precision -> autocast dtype; fp32: none


class ReIDStrategy(ReportingMixin, StrategyStateMixin, AvalancheAdapter):
    """Base strategy: CLIP-ReID-style ID + triplet losses on a growing classifier (fine-tune)."""

    #: the method's declared hyperparameters (`strategy.*`), read as `self.hp.<name>`
    Params: ClassVar[type[ReIDParams]] = ReIDParams
    #: attribute names (on the strategy) carried from one experience to the next, besides the model
    carried: ClassVar[tuple[str, ...]] = ()
    #: True for a method trained once on every domain merged into one experience (labelled UNION_LABEL)
    sees_union: ClassVar[bool] = False
    #: plugin classes whose instances must appear in this order in the strategy's plugins
    plugin_order: ClassVar[tuple[type, ...]] = ()

    def __init__(self, *, model: nn.Module, cfg: dict, num_classes: list[int], class_offsets: list[int],
                 device: str = "cpu", plugins: list | None = None, evaluator=None, run: RunContext | None = None):
        run = run or RunContext()
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
        self.device_input = run.device_input
        self.epoch_checkpoint = run.epoch_checkpoint
        self._resume = run.resume  # consumed by the first experience trained
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

    # ---- hooks: construction ----------------------------------------------------------------------
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

    # ---- hooks: an experience ---------------------------------------------------------------------
    def start_experience(self, index: int) -> None:
        """Called when experience `index` starts (in training and in the dry run), before any plugin callback."""
        self.exp_index = index
        self.train_epochs = int(per_domain(self.train_cfg["epochs"], index))
        self.epoch = 0

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

    def before_training_epochs(self) -> None:
        """Called once the experience is set up, before its epoch loop; also when a run resumes
        inside the experience (its set-up is replayed, then the saved state is loaded on top)."""

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

    def forward(self):
        with self.autocast():
            return self.step_model(self.mb_x)

    def compute_loss(self, out: dict, labels: Tensor) -> Tensor:
        """ID loss on every head tap + batch-hard triplet on every triplet tap."""
        hp = self.hp
        ce, tri = reid_losses(out, labels, hp, self.model.backbone.triplet_taps)
        self.record_losses({"id": ce, "tri": tri})
        return hp.id_weight * ce + hp.triplet_weight * tri

    def end_experience(self) -> None:
        """Called once the experience's epochs are done, before the plugins' after_training_exp."""

    def text_anchors(self):
        """Diagnostics: a metrics.diagnostics.TextAnchors of the identities just trained, or None (no text side)."""
        return None

    def routing_record(self):
        """Diagnostics: a context manager yielding a metrics.diagnostics.RoutingRecord that the model fills
        with the prompt slots each test image selects while it is entered, or None (no prompt pool)."""
        return contextlib.nullcontext(None)

    @property
    def kd_active(self) -> bool:
        """Whether the current experience distils from an earlier model: from the second experience
        on, when a plugin declares `distils`."""
        return self.exp_index > 0 and any(getattr(p, "distils", False) for p in self.plugins)

    # ---- helpers for methods ----------------------------------------------------------------------
    def batch_p(self) -> int:
        """Identities per P×K batch in the current experience."""
        return int(per_domain(self.train_cfg["batch_p"], self.exp_index))

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

    @property
    def step_model(self) -> nn.Module:
        """What the training forward calls: the model, or with train.compile its torch.compile wrapper
        (built once; it shares the model's parameters and recompiles when a head changes size)."""
        if not (self.train_cfg.get("compile") and self.is_training):
            return self.model
        if self._compiled is None:
            self._compiled = torch.compile(self.model)
        return self._compiled

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

    def reset_losses(self) -> None:
        """Start the loss record of a new step (the iteration loop does this before every iteration)."""
        self.loss_terms = {}

    def record_losses(self, terms: Mapping[str, Tensor | float]) -> None:
        """Record unweighted loss terms of the current step by name (progress bar, TensorBoard, losses.csv)."""
        self.loss_terms.update({k: float(v.detach() if isinstance(v, Tensor) else v) for k, v in terms.items()})

    def log_losses(self, phase: str, total: Tensor, epoch: int | None = None) -> None:
        """Hand the current step's total and terms to the run's loss logs (a step outside Avalanche's
        iteration loop, e.g. PAD's stage 1, calls reset_losses() before it and this after it)."""
        from .loss_log import LossLog

        for p in self.plugins:
            if isinstance(p, LossLog):
                p.log(self, phase, total, epoch)


def check_plugin_order(owner: str, plugins: list, order: tuple[type, ...]) -> None:
    """Raise if instances of the classes in `order` appear among `plugins` out of that order."""
    present = [type(p) for p in plugins if type(p) in order]
    if present != sorted(present, key=order.index):
        raise ValueError(f"{owner}: plugins {', '.join(c.__name__ for c in present)} are out of order; "
                         f"{owner}.plugin_order requires {', '.join(c.__name__ for c in order)}")
