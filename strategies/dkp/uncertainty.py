"""DKP's uncertainty model (docs/methods/dkp.md): a zoo trunk with a mean head μ and a variance head σ.

In training, `n_samples` reparameterised features l2norm(μ + ε ⊙ σ) go with μ through one BNNeck
and one classifier; at test time the feature is μ.

ResNet (the paper's model): trunk cut after layer3; μ = l2norm(Linear(GeM(map))),
σ = ReLU(l2norm(Linear(GeM(Conv8×8(map)) + 1e-4))) + 1e-4.
CLIP (pad-bench's analogue): μ from the final CLS token (x12); σ from the patch tokens entering the
last block, mapped by a bias-free per-token Linear (the 8×8 conv's counterpart) and mean-pooled
(GeM needs positive inputs, tokens are signed); both then take the same heads as on ResNet.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad_bench.errors import UserError
from pad_bench.models.clip import CLIPBackbone
from pad_bench.models.reid import ReIDNet
from pad_bench.models.resnet import ResNetBackbone

VAR_KERNEL = 8  # DKP's conv_var kernel


def gaussian_samples(mu: Tensor, sigma: Tensor, n: int) -> Tensor:
    """n samples l2norm(μ + ε ⊙ σ), ε ~ N(0, I): (B, d) -> (n, B, d)."""
    eps = torch.randn(n, *mu.shape, dtype=mu.dtype, device=mu.device)
    return F.normalize(mu + eps * sigma, dim=-1)


class UncertaintyHeads(nn.Module):
    """μ = l2norm(Linear(mean_in)); σ = ReLU(l2norm(Linear(var_in + 1e-4))) + 1e-4."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.mean = nn.Linear(in_dim, dim)
        self.var = nn.Linear(in_dim, dim)

    def forward(self, mean_in: Tensor, var_in: Tensor) -> tuple[Tensor, Tensor]:
        mu = F.normalize(self.mean(mean_in), dim=1)
        sigma = F.relu(F.normalize(self.var(var_in + 1e-4), dim=1)) + 1e-4
        return mu, sigma


class UncertaintyBackbone(nn.Module):
    """A backbone with the taps 'mu' and 'sigma'; subclasses give the heads' two inputs."""

    head_taps = ("mu",)
    embedding_taps = ("mu",)
    triplet_taps = ("mu",)

    def __init__(self, trunk: nn.Module, in_dim: int, dim: int):
        super().__init__()
        if dim < 1:
            raise UserError(f"DKP feature dim must be >= 1, got {dim}")
        self.trunk = trunk
        self.heads = UncertaintyHeads(in_dim, dim)
        self.tap_dims = {"mu": dim, "sigma": dim}

    def head_inputs(self, x: Tensor, prompter=None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor, prompter=None) -> dict[str, Tensor]:
        mu, sigma = self.heads(*self.head_inputs(x, prompter))
        return {"mu": mu, "sigma": sigma}

    def image_encoder(self) -> nn.Module:
        """The module whose trainable flags the run reports as `unfreeze`: this whole backbone."""
        return self

    def image_encoder_state_dict(self) -> dict[str, Tensor]:
        return dict(self.state_dict())


class ResNetUncertainty(UncertaintyBackbone):
    def __init__(self, trunk: ResNetBackbone, dim: int, image_size: Sequence[int]):
        channels = trunk.tap_dims["gem"]
        super().__init__(trunk, channels, dim)
        h, w = _map_size(trunk, image_size)
        # 8 at 256×128 (a 16×8 layer3 map); smaller test inputs get the largest kernel that fits
        self.var_conv = nn.Conv2d(channels, channels, min(VAR_KERNEL, h, w), bias=False)

    def head_inputs(self, x: Tensor, prompter=None) -> tuple[Tensor, Tensor]:
        if prompter is not None:
            raise UserError("ResNet backbones take no prompts; use a CLIP model for prompt-based strategies")
        fmap = self.trunk.forward_map(x)
        return self.trunk.pool(fmap), self.trunk.pool(self.var_conv(fmap))


class CLIPUncertainty(UncertaintyBackbone):
    def __init__(self, trunk: CLIPBackbone, dim: int):
        width = trunk.tap_dims["x12"]
        super().__init__(trunk, width, dim)
        self.var_tokens = nn.Linear(width, width, bias=False)

    def head_inputs(self, x: Tensor, prompter=None) -> tuple[Tensor, Tensor]:
        last = len(self.trunk.blocks) - 1
        seen: dict[int, Tensor] = {}

        def tap(i: int, tokens: Tensor):  # the prompt hook sees every block's input; keep the last one's
            seen[i] = tokens
            return prompter(i, tokens) if prompter is not None else None

        cls = self.trunk(x, prompter=tap)["x12"]
        patches = seen[last][:, 1:]
        return cls, self.var_tokens(patches).mean(dim=1)


class DKPNet(ReIDNet):
    """ReIDNet on an UncertaintyBackbone. Training outputs add 'samples' (S, B, d) and their
    'sample_logits' (S, B, C); μ and the samples are normalised by the BNNeck as one batch."""

    def __init__(self, backbone: UncertaintyBackbone, *, n_samples: int, **kwargs):
        super().__init__(backbone, **kwargs)
        if n_samples < 1:
            raise UserError(f"DKP needs n_samples >= 1 (the set triplet's anchors), got {n_samples}")
        self.n_samples = n_samples

    def forward(self, x: Tensor, prompter=None) -> dict:
        out = self.backbone(x, prompter=prompter)
        feats = out["mu"][None]
        if self.training:
            feats = torch.cat([feats, gaussian_samples(out["mu"], out["sigma"], self.n_samples)])
        bn = self.necks["mu"](feats.flatten(0, 1)).view_as(feats)
        logits = self.classifiers["mu"](bn)
        out.update(samples=feats[1:], bn={"mu": bn[0]}, sample_logits=logits[1:], embedding=out["mu"],
                   logits={"mu": logits[0]} if self.num_classes else {})
        return out


def dkp_model(net: ReIDNet, *, dim: int, n_samples: int) -> DKPNet:
    """DKP's model on the trunk of a zoo model (a ResNet cut after layer3, or a CLIP)."""
    trunk = net.backbone
    if isinstance(trunk, ResNetBackbone):
        backbone: UncertaintyBackbone = ResNetUncertainty(trunk, dim, net.image_size)
    elif isinstance(trunk, CLIPBackbone):
        backbone = CLIPUncertainty(trunk, dim)
    else:
        raise UserError(f"DKP supports ResNet and CLIP backbones, not {type(trunk).__name__}")
    spec = {**net.spec, "dkp_dim": dim, "dkp_samples": n_samples}
    return DKPNet(backbone, n_samples=n_samples, num_classes=0, image_size=net.image_size, spec=spec,
                  bnneck_bias_trainable=bool(net.spec.get("bnneck_bias_trainable", False)))


@torch.no_grad()
def _map_size(trunk: ResNetBackbone, image_size: Sequence[int]) -> tuple[int, int]:
    was_training = trunk.training
    trunk.eval()
    h, w = trunk.forward_map(torch.zeros(1, 3, *image_size)).shape[-2:]
    trunk.train(was_training)
    return int(h), int(w)
