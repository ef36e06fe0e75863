"""The one place pad-bench overrides Avalanche's training template, pinned to avalanche-lib 0.6.0.

`AvalancheAdapter` turns `SupervisedTemplate`'s experience, epoch and iteration steps into the
documented hooks of `ReIDStrategy` (base.py), which builds on it; methods override those hooks, never
the private methods below. Every template method pad-bench overrides, with the parameters Avalanche
declares for it, is listed in `TEMPLATE_OVERRIDES`: tests/test_hooks.py checks them against the
installed Avalanche, so that an upgrade which renames or re-signs one fails loudly instead of
silently skipping a hook. Avalanche's per-experience order (0.6.0): dataset adaptation -> train
loader -> model adaptation -> optimizer -> before_training_exp plugins -> epochs -> after_training_exp
plugins.
"""
from __future__ import annotations

import torch
from avalanche.training.templates import SupervisedTemplate
from torch.utils.data import DataLoader

from ..data.batch import ReIDBatch
from ..data.loading import loader_workers
from ..data.sampler import make_batch_sampler
from ..errors import UserError
from .optim import build_optimizer, scaled, step

AVALANCHE_VERSION = "0.6.0"
#: Avalanche's template methods pad-bench overrides -> the parameters Avalanche declares for them.
#: The private ones are overridden in this module only; `forward` is a hook of ReIDStrategy.
TEMPLATE_OVERRIDES: dict[str, tuple[str, ...]] = {
    "make_train_dataloader": ("self", "num_workers", "shuffle", "pin_memory", "persistent_workers", "drop_last",
                              "kwargs"),
    "model_adaptation": ("self", "model"),
    "make_optimizer": ("self", "reset_optimizer_state", "remove_params", "verbose_optimizer", "kwargs"),
    "forward": ("self",),
    "criterion": ("self",),
    "backward": ("self",),
    "optimizer_step": ("self",),
    "_before_training_exp": ("self", "kwargs"),
    "_train_exp": ("self", "experience", "eval_streams", "kwargs"),
    "_before_training_epoch": ("self", "kwargs"),
    "_after_training_epoch": ("self", "kwargs"),
    "_before_training_iteration": ("self", "kwargs"),
    "_after_training_iteration": ("self", "kwargs"),
    "_after_training_exp": ("self", "kwargs"),
    "_unpack_minibatch": ("self",),
}


class AvalancheAdapter(SupervisedTemplate):
    """Avalanche's template with pad-bench's experience loop: P×K loaders, per-experience optimizers
    and LR factors, epochs counted from `self.epoch` (resumable inside an experience) and batches
    whose fields are named (`mb_camid`, `mb_is_query`, `mb_domain`)."""

    # ---- the batch, by field name (data/batch.py) -------------------------------------------------
    @property
    def mb_batch(self) -> ReIDBatch:
        """The current batch with its fields named."""
        return ReIDBatch.of(self.mbatch)

    @property
    def mb_camid(self):
        return self.mb_batch.camid

    @property
    def mb_is_query(self):
        return self.mb_batch.is_query

    @property
    def mb_domain(self):
        return self.mb_batch.domain

    def _unpack_minibatch(self):
        super()._unpack_minibatch()
        if self.device_input is not None:  # cached data path: uint8 images, transformed here
            b = self.mb_batch
            image = (self.device_input.train_batch(b.image, b.domain, self.images_seen) if self.is_training
                     else self.device_input.eval_batch(b.image))
            self.mbatch = list(b._replace(image=image))

    # ---- experience ---------------------------------------------------------------------------------
    def _before_training_exp(self, **kwargs):
        self.start_experience(self.experience.current_experience)
        super()._before_training_exp(**kwargs)  # data, heads, trainable set, optimizer, plugins
        self.experience_history.append(self.experience_settings())
        self.before_training_epochs()

    def make_train_dataloader(self, num_workers: int = 0, **kwargs):
        labels = [int(y) for y in self.adapted_dataset.targets]
        self.id_sampler = make_batch_sampler(self.train_cfg["sampler"], labels, list(self.adapted_dataset.camid),
                                             self.batch_p(), self.train_cfg["batch_k"],
                                             seed=self.seed * 1000 + self.exp_index)
        self.dataloader = DataLoader(self.adapted_dataset, batch_sampler=self.id_sampler,
                                     num_workers=loader_workers(self.train_cfg),
                                     pin_memory=self.device.type == "cuda")

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

    def _train_exp(self, experience, eval_streams=None, **kwargs):
        """Avalanche's epoch loop, starting at `self.epoch` (non-zero when resumed inside the experience)."""
        if self._resume is not None:
            self.load_mid_experience_state(self._resume)
            self._resume = None
        while self.epoch < self.train_epochs:
            self._before_training_epoch(**kwargs)
            if self._stop_training:
                self._stop_training = False
                break
            self.training_epoch(**kwargs)
            self._after_training_epoch(**kwargs)

    def _after_training_exp(self, **kwargs):
        self.end_experience()
        super()._after_training_exp(**kwargs)
        self.param_history.append(self.param_report())

    # ---- epoch --------------------------------------------------------------------------------------
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

    # ---- iteration ----------------------------------------------------------------------------------
    def _before_training_iteration(self, **kwargs):
        self.reset_losses()
        super()._before_training_iteration(**kwargs)

    def _after_training_iteration(self, **kwargs):
        self.images_seen += len(self.mb_y)
        super()._after_training_iteration(**kwargs)

    def criterion(self):
        if not self.is_training:
            return torch.zeros((), device=self.device)
        return self.compute_loss(self.mb_output, self.mb_y)

    def backward(self):
        scaled(self.loss, self.scaler).backward(retain_graph=self.retain_graph)

    def optimizer_step(self):
        step(self.optimizer, self.scaler)
