"""DKP's distribution prototypes of the domain just trained, the only data-derived state it carries."""
from __future__ import annotations

import copy

from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from pad_bench.errors import UserError

from ..prototypes import class_prototypes

BN_MODES = ("eval", "train")
BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


class PrototypePlugin(SupervisedPlugin):
    """At the end of every experience (after fusion: list it after the fusion plugin), replaces
    `prototypes` by μ_c/σ_c of the current domain's training images, so that no earlier domain's
    image is read again.

    bn_mode 'eval' extracts with BN running statistics and changes nothing. 'train' is the released
    code's way: a training-mode pass (batch statistics) that also moves the BN running statistics.
    The code makes that pass at the start of step t+1, after step t was evaluated and after the old
    model was copied for fusion; so here the pass runs on a copy, the evaluated model keeps its
    statistics, and the moved ones (`pending_bn`) are loaded into the model at the start of the
    next experience, after the old-model plugin has copied it (list this plugin after that one)
    and before the classifier grows. After the last experience they are never applied.
    """

    carried = ("prototypes", "pending_bn")

    def __init__(self, *, bn_mode: str = "eval"):
        super().__init__()
        if bn_mode not in BN_MODES:
            raise UserError(f"dkp_proto_bn must be one of {', '.join(BN_MODES)}, got {bn_mode!r}")
        self.bn_mode = bn_mode
        self.prototypes: dict[str, Tensor] | None = None
        self.pending_bn: dict[str, Tensor] | None = None

    def after_training_exp(self, strategy, **kwargs):
        if self.bn_mode == "eval":
            model = strategy.model
        else:
            copied = copy.deepcopy(strategy.model)
            model = _TrainModeView(copied)
        feats = strategy.extract(strategy.experience.dataset, model, keys=("mu", "sigma"))
        self.prototypes = class_prototypes(feats["mu"], feats["sigma"], feats["labels"])
        if self.bn_mode == "train":
            self.pending_bn = bn_statistics(copied)

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        if self.pending_bn is not None:
            strategy.model.load_state_dict(self.pending_bn, strict=False)
            self.pending_bn = None


def bn_statistics(model: nn.Module) -> dict[str, Tensor]:
    """The BatchNorm buffers of `model` (running mean, variance and batch count), cloned."""
    return {k: t.detach().clone() for k, t in model.state_dict().items() if k.rsplit(".", 1)[-1] in BN_BUFFERS}


class _TrainModeView(nn.Module):
    """The wrapped model, kept in training mode whatever mode it is switched to (extract() calls eval())."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.inner = model

    def train(self, mode: bool = True):
        self.inner.train(True)
        return self

    def forward(self, x: Tensor):
        return self.inner(x)
