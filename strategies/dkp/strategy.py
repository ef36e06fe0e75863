"""DKP (CVPR'24, docs/methods/dkp.md): an uncertainty model trained on μ and its Gaussian samples, DKT
distillation from the last domain's distribution prototypes, and α = 0.5 fusion after every step.
Carried: the fused model and the last domain's μ_c/σ_c (computed at the end of its experience)."""
from typing import Literal

import torch

from pad_bench.hparams import hp
from pad_bench.models import create_model, model_family, model_options
from pad_bench.registry import register_strategy
from pad_bench.training.base import ReIDStrategy
from pad_bench.training.params import ReIDParams
from pad_bench.training.losses import id_loss, set_triplet
from pad_bench.training.plugins.fusion import FusionPlugin
from pad_bench.training.plugins.old_model import OldModelPlugin

from .plugins.dkt import DKTPlugin
from .plugins.prototypes import PrototypePlugin
from .uncertainty import dkp_model


class DKPParams(ReIDParams):
    dkp_dim: int = hp(2048, "dimension of the uncertainty model's mu / sigma", ge=1)
    dkp_samples: int = hp(6, "reparameterised samples per image (the loss averages them with mu)", ge=1)
    dkp_proto_bn: Literal["eval", "train"] = hp(
        "eval", "BN statistics when the prototypes are computed (train: the released code's batch statistics)")
    dkt_weight: float = hp(0.1, "weight of DKT (every iteration from domain 2 on)", ge=0)
    dkt_lambda1: float = hp(0.1, "DKT's lambda_1", ge=0)
    dkt_lambda2: float = hp(0.1, "DKT's lambda_2", ge=0)
    fusion_alpha: float = hp(0.5, "weight of the new model in the fusion after every domain from 2 on", ge=0, le=1)


@register_strategy("dkp")
class DKP(ReIDStrategy):
    """CE averaged over μ and its samples + set triplet; DKT, fusion and prototypes are plugins."""

    # the old model exists before fusion reads it; the prototypes describe the fused model
    plugin_order = (OldModelPlugin, DKTPlugin, FusionPlugin, PrototypePlugin)
    Params = DKPParams

    def __init__(self, *, cfg: dict, plugins: list | None = None, **kwargs):
        hp = self.Params(cfg["strategy"])
        self.old = old = OldModelPlugin()  # DKP++ distils from it
        protos = PrototypePlugin(bn_mode=hp.dkp_proto_bn)
        own = [old,
               DKTPlugin(protos=protos, weight=hp.dkt_weight, lambda1=hp.dkt_lambda1, lambda2=hp.dkt_lambda2),
               FusionPlugin(old=old, alpha=hp.fusion_alpha),
               protos]
        super().__init__(cfg=cfg, plugins=own + list(plugins or []), **kwargs)

    @classmethod
    def build_model(cls, cfg: dict, bench) -> torch.nn.Module:
        m, hp = cfg["model"], cls.Params(cfg["strategy"])
        cut = {"cut_at": "layer3"} if model_family(m["name"]) == "resnet" else {}
        net = create_model(m["name"], num_classes=0, weights=m.get("weights"),
                           image_size=tuple(cfg["protocol"]["image_size"]), **cut, **model_options(m))
        return dkp_model(net, dim=hp.dkp_dim, n_samples=hp.dkp_samples)

    def compute_loss(self, out: dict, labels: torch.Tensor) -> torch.Tensor:
        """CE on μ and every sample (averaged), and the set triplet (samples against batch μ's)."""
        hp = self.hp
        ce = sample_id_loss(out, labels, hp.label_smoothing)
        tri = set_triplet(out["samples"], out["mu"], labels)
        self.record_losses({"id": ce, "tri": tri})
        return hp.id_weight * ce + hp.triplet_weight * tri


def sample_id_loss(out: dict, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """The ID loss averaged over the logits of μ and of every sample."""
    logits = [out["logits"]["mu"], *out["sample_logits"]]
    return torch.stack([id_loss(z, labels, label_smoothing) for z in logits]).mean()
