"""The rehearser life cycle (DASK, DKP++): trained at the end of each experience, used in the next one."""
from __future__ import annotations

import logging
from typing import Sequence

import torch
from avalanche.core import SupervisedPlugin
from torch import Tensor
from torch.utils.data import DataLoader

from ...data.batch import ReIDBatch
from ...data.loading import loader_workers
from ...data.sampler import PKBatchSampler
from ...hparams import HParams, hp
from ...models import model_family
from ..rehearser import KernelPredictor, Normalisation, apply_kernels, train_rehearser

log = logging.getLogger("pad_bench")


class RehearserParams(HParams):
    """The rehearser's keys, shared by the methods that use one (their Params also derive from this)."""

    rehearser_iters: int = hp(20000, "rehearser iterations per domain (50 x 400 in the released code)", ge=0)
    rehearser_batch: list[int] = hp([32, 4], "the rehearser's P x K batch: [identities, images each]", ge=1)
    rehearser_lr: float = hp(2.0e-4, "the rehearser's Adam LR", ge=0)
    rehearser_weights: str | None = hp(None, "ImageNet MobileNetV3-small state dict; null = random init")

    def pk_batch(self) -> tuple[tuple[str, str], int, int]:
        """The rehearser's P×K batch as ReIDStrategy.extra_pk_batches lists it."""
        p, k = self.rehearser_batch
        return ("strategy.rehearser_batch[0]", "strategy.rehearser_batch[1]"), int(p), int(k)


class RehearserPlugin(SupervisedPlugin):
    """Trains a fresh rehearser on every experience but the last (at its end, on its own training
    images) and keeps it for the next experience: `current` is the previous domain's rehearser
    (None during the first experience). Carried as a state dict."""

    carried = ("state",)

    def __init__(self, *, iters: int, batch: Sequence[int], lr: float, weights: str | None):
        super().__init__()
        self.iters, self.batch, self.lr, self.weights = iters, tuple(batch), lr, weights
        self.state: dict[str, Tensor] | None = None
        self.current: KernelPredictor | None = None
        self.norm: Normalisation | None = None

    @classmethod
    def from_params(cls, hp: RehearserParams, **extra) -> "RehearserPlugin":
        return cls(iters=hp.rehearser_iters, batch=hp.rehearser_batch, lr=hp.rehearser_lr,
                   weights=hp.rehearser_weights, **extra)

    def rehearse(self, strategy, x: Tensor) -> Tensor:
        """The previous domain's rehearser applied to a batch (normalised images in, normalised out);
        call only when `current` is set."""
        if self.norm is None:
            self.norm = Normalisation(model_family(strategy.cfg["model"]["name"]), strategy.device)
        raw = self.norm.invert(x)
        with torch.no_grad():
            return apply_kernels(raw, self.current(raw))

    def before_training_exp(self, strategy, **kwargs):
        self.current = None
        if self.state is not None:
            self.current = KernelPredictor().to(strategy.device)
            self.current.load_state_dict(self.state)
            self.current.train()  # used under no_grad in training mode, as released

    def after_training_exp(self, strategy, **kwargs):
        if strategy.exp_index >= len(strategy.num_classes_per_exp) - 1:
            self.state = None  # no later domain needs it
            return
        net = KernelPredictor().to(strategy.device)
        if self.weights:
            net.load_backbone(self.weights)
        p, k = self.batch
        labels = [int(y) for y in strategy.adapted_dataset.targets]
        sampler = PKBatchSampler(labels, p, k, seed=strategy.seed * 1000 + 500 + strategy.exp_index)
        loader = DataLoader(strategy.adapted_dataset, batch_sampler=sampler,
                            num_workers=loader_workers(strategy.train_cfg))
        norm = Normalisation(model_family(strategy.cfg["model"]["name"]), strategy.device)
        last = train_rehearser(net, _endless(loader, sampler, strategy), norm, iters=self.iters, lr=self.lr)
        log.info("%s: trained the rehearser of experience %d (%d iterations, L1 %.4f)",
                 type(strategy).__name__, strategy.exp_index + 1, self.iters, last)
        self.state = {k: t.detach().clone() for k, t in net.state_dict().items()}

    def after_training(self, strategy, **kwargs):
        self.current = None


def _endless(loader: DataLoader, sampler: PKBatchSampler, strategy):
    """Training batches, epoch after epoch; on the cached data path augmented on the device, like the
    strategy's own batches."""
    epoch = step = 0
    while True:
        sampler.set_epoch(epoch)
        for batch in map(ReIDBatch.of, loader):
            x = batch.image.to(strategy.device)
            if strategy.device_input is not None:
                x = strategy.device_input.train_batch(x, batch.domain.to(strategy.device), step)
            step += len(x)
            yield x
        epoch += 1
