"""DKP's distribution prototypes of the domain just trained, the only data-derived state it carries."""
from __future__ import annotations

from avalanche.core import SupervisedPlugin
from torch import Tensor, nn

from pad_bench.errors import UserError

from ..prototypes import class_prototypes

BN_MODES = ("eval", "train")


class PrototypePlugin(SupervisedPlugin):
    """At the end of every experience (after fusion: list it after the fusion plugin), replaces
    `prototypes` by μ_c/σ_c of the current domain's training images, so that no earlier domain's
    image is read again. bn_mode 'eval' uses BN running statistics; 'train' is the released code's
    way (batch statistics, updating the running ones)."""

    carried = ("prototypes",)

    def __init__(self, *, bn_mode: str = "eval"):
        super().__init__()
        if bn_mode not in BN_MODES:
            raise UserError(f"dkp_proto_bn must be one of {', '.join(BN_MODES)}, got {bn_mode!r}")
        self.bn_mode = bn_mode
        self.prototypes: dict[str, Tensor] | None = None

    def after_training_exp(self, strategy, **kwargs):
        model = strategy.model if self.bn_mode == "eval" else _TrainModeView(strategy.model)
        feats = strategy.extract(strategy.experience.dataset, model, keys=("mu", "sigma"))
        self.prototypes = class_prototypes(feats["mu"], feats["sigma"], feats["labels"])


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
